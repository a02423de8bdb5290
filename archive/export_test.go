package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
)

// exportedEntry is what the tests check of one tar entry.
type exportedEntry struct {
	Type     byte
	Mode     int64
	Uid, Gid int
	Link     string
	Content  string
	Dev      [2]int64
	Xattrs   map[string]string
}

// readTar returns the entries of a tar in order, by name.
func readExportedTar(t *testing.T, data []byte) ([]string, map[string]exportedEntry) {
	t.Helper()
	var order []string
	entries := map[string]exportedEntry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading exported tar: %v", err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		e := exportedEntry{
			Type: hdr.Typeflag, Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid,
			Link: hdr.Linkname, Content: string(content),
			Dev: [2]int64{hdr.Devmajor, hdr.Devminor},
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		order = append(order, hdr.Name)
		entries[hdr.Name] = e
	}
	return order, entries
}

func exportNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestExportDiffDir builds a diff dir by hand, the way overlay leaves it,
// and checks the tar Export makes of it.
func TestExportDiffDir(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	p := func(rel string) string { return filepath.Join(dir, rel) }

	exportNoErr(t, os.MkdirAll(p("etc/sub"), 0o755))
	exportNoErr(t, os.WriteFile(p("etc/passwd"), []byte("root:x:0:0\n"), 0o644))
	exportNoErr(t, os.Chown(p("etc/passwd"), 1885580785, 4294967294))
	exportNoErr(t, unix.Mknod(p("etc/gone"), unix.S_IFCHR, 0)) // whiteout
	exportNoErr(t, os.Mkdir(p("opaque"), 0o700))               // opaque dir
	exportNoErr(t, unix.Setxattr(p("opaque"), overlayOpaqueXattr, []byte("y"), 0))
	exportNoErr(t, os.WriteFile(p("opaque/kept"), []byte("k"), 0o600))
	exportNoErr(t, os.MkdirAll(p("bin"), 0o755))
	exportNoErr(t, os.WriteFile(p("bin/app"), []byte("binary"), 0o755))
	exportNoErr(t, os.Link(p("bin/app"), p("bin/zz-link")))
	exportNoErr(t, unix.Setxattr(p("bin/app"), "security.capability",
		[]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	exportNoErr(t, unix.Setxattr(p("bin/app"), "user.note", []byte("hi"), 0))
	exportNoErr(t, unix.Chmod(p("bin/app"), 0o4755)) // after the capability, which drops setuid
	exportNoErr(t, os.Symlink("../bin/app", p("etc/app-link")))
	exportNoErr(t, os.MkdirAll(p("dev"), 0o755))
	exportNoErr(t, unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	exportNoErr(t, unix.Mknod(p("dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	exportNoErr(t, unix.Mkfifo(p("dev/fifo"), 0o644))
	for name, mode := range map[string]os.FileMode{"dev/null": 0o666, "dev/sda": 0o660, "dev/fifo": 0o644} {
		exportNoErr(t, os.Chmod(p(name), mode)) // past the umask
	}
	stamp := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	exportNoErr(t, os.Chtimes(p("etc/passwd"), stamp, stamp))

	var buf bytes.Buffer
	exportNoErr(t, Export(dir, &buf, ExportOptions{}))
	order, got := readExportedTar(t, buf.Bytes())

	wantOrder := []string{
		"bin/", "bin/app", "bin/zz-link",
		"dev/", "dev/fifo", "dev/null", "dev/sda",
		"etc/", "etc/.wh.gone", "etc/app-link", "etc/passwd", "etc/sub/",
		"opaque/", "opaque/.wh..wh..opq", "opaque/kept",
	}
	if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
		t.Fatalf("entry order\n got %q\nwant %q", order, wantOrder)
	}

	checks := []struct {
		name string
		want exportedEntry
	}{
		{"etc/passwd", exportedEntry{Type: tar.TypeReg, Mode: 0o644, Uid: 1885580785, Gid: 4294967294, Content: "root:x:0:0\n"}},
		{"etc/.wh.gone", exportedEntry{Type: tar.TypeReg}},
		{"opaque/", exportedEntry{Type: tar.TypeDir, Mode: 0o700}},
		{"opaque/.wh..wh..opq", exportedEntry{Type: tar.TypeReg}},
		{"bin/app", exportedEntry{Type: tar.TypeReg, Mode: 0o4755, Content: "binary", Xattrs: map[string]string{
			"security.capability": string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
			"user.note":           "hi",
		}}},
		{"bin/zz-link", exportedEntry{Type: tar.TypeLink, Mode: 0o4755, Link: "bin/app", Xattrs: map[string]string{
			"security.capability": string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
			"user.note":           "hi",
		}}},
		{"etc/app-link", exportedEntry{Type: tar.TypeSymlink, Mode: 0o777, Link: "../bin/app"}},
		{"dev/null", exportedEntry{Type: tar.TypeChar, Mode: 0o666, Dev: [2]int64{1, 3}}},
		{"dev/sda", exportedEntry{Type: tar.TypeBlock, Mode: 0o660, Dev: [2]int64{8, 0}}},
		{"dev/fifo", exportedEntry{Type: tar.TypeFifo, Mode: 0o644}},
	}
	for _, c := range checks {
		e := got[c.name]
		if e.Type != c.want.Type || e.Mode != c.want.Mode || e.Uid != c.want.Uid ||
			e.Gid != c.want.Gid || e.Link != c.want.Link || e.Content != c.want.Content ||
			e.Dev != c.want.Dev || len(e.Xattrs) != len(c.want.Xattrs) {
			t.Errorf("%s: got %+v, want %+v", c.name, e, c.want)
			continue
		}
		for k, v := range c.want.Xattrs {
			if e.Xattrs[k] != v {
				t.Errorf("%s: xattr %s = %q, want %q", c.name, k, e.Xattrs[k], v)
			}
		}
	}

	// Exporting twice gives the same bytes: the order and times are stable.
	var again bytes.Buffer
	exportNoErr(t, Export(dir, &again, ExportOptions{}))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("two exports of the same dir differ")
	}
}
