package interop

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/testutil"
)

// tarTypes maps tar entry types to testutil.Node types. A hardlink entry
// is checked through its target's type.
var tarTypes = map[byte]string{
	tar.TypeDir: "dir", tar.TypeReg: "file", tar.TypeSymlink: "symlink",
	tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo",
}

// compareWithTar checks a diff dir's snapshot against the tar it was
// applied from, header by header: the tar is the oracle, so a difference
// both engines share still shows. It returns one line per difference.
// The tar must hold no whiteouts and no repeated names.
func compareWithTar(t *testing.T, tree testutil.Tree, tarPath string) []string {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var out []string
	seen := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", tarPath, err)
		}
		name := tarName(hdr.Name)
		seen[name] = true
		node, ok := tree[name]
		if !ok {
			out = append(out, name+": in the tar, not in the diff dir")
			continue
		}
		out = append(out, compareEntry(t, tree, name, node, hdr, tr)...)
	}
	for _, p := range tree.Paths() {
		if !seen[p] {
			out = append(out, p+": in the diff dir, not in the tar")
		}
	}
	return out
}

// compareEntry compares one tar header (and the entry's content, read
// from tr) with the node at name.
func compareEntry(t *testing.T, tree testutil.Tree, name string, node testutil.Node,
	hdr *tar.Header, tr io.Reader) []string {
	var out []string
	field := func(what string, got, want any) {
		if got != want {
			out = append(out, fmt.Sprintf("%s: %s %v, tar says %v", name, what, got, want))
		}
	}

	if hdr.Typeflag == tar.TypeLink {
		target := tree[tarName(hdr.Linkname)]
		if node.Hardlink == "" || node.Hardlink != target.Hardlink {
			out = append(out, fmt.Sprintf("%s: not one inode with %s", name, hdr.Linkname))
		}
		return out
	}

	want, ok := tarTypes[hdr.Typeflag]
	if !ok {
		t.Fatalf("%s: tar entry type %q not expected in a rootfs tar", name, hdr.Typeflag)
	}
	field("type", node.Type, want)
	if node.Type != "symlink" {
		field("mode", fmt.Sprintf("%04o", node.Mode), fmt.Sprintf("%04o", hdr.Mode&0o7777))
	}
	field("owner", fmt.Sprintf("%d:%d", node.UID, node.GID), fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid))
	if node.Type == "dir" || node.Type == "file" {
		field("mtime", node.MTime.Format(time.RFC3339Nano), hdr.ModTime.UTC().Format(time.RFC3339Nano))
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		h := sha256.New()
		if _, err := io.Copy(h, tr); err != nil {
			t.Fatalf("%s: reading the tar: %v", name, err)
		}
		field("size", node.Size, hdr.Size)
		field("sha256", node.SHA256, hex.EncodeToString(h.Sum(nil)))
	case tar.TypeSymlink:
		field("link", node.Link, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		field("rdev", node.Rdev, fmt.Sprintf("%d:%d", hdr.Devmajor, hdr.Devminor))
	}

	xattrs := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xattrs[x] = v
		}
	}
	if !maps.Equal(node.Xattrs, xattrs) {
		out = append(out, fmt.Sprintf("%s: xattrs %v, tar says %v", name, node.Xattrs, xattrs))
	}
	return out
}

// tarName is a tar entry name as a Snapshot path: "./" is ".", and
// "./etc/" is "etc".
func tarName(name string) string {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if name == "" || name == "." {
		return "."
	}
	return name
}
