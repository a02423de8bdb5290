package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/internal/rootfs"
	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/testutil"
)

// TestDebianRootfsSameDiffDirs imports a real Debian rootfs (debootstrap
// minbase, tarred by GNU tar) with strata in three forms and with the peer
// as a plain tar, and compares strata's diff dirs with the peer's entry by
// entry: type, mode, owner, content, xattrs, link targets, devices,
// hardlink groups and file and directory mtimes. The rootfs is built once
// per machine (internal/rootfs); without debootstrap or the mirror the
// test skips, or fails when CI=true.
func TestDebianRootfsSameDiffDirs(t *testing.T) {
	csGraph, csRun := testutil.TempStore(t)
	cs := needPeer(t, csGraph, csRun)
	set := rootfs.Require(t)
	graph, run := testutil.TempStore(t)
	s := openStore(t, graph, run)

	plainDigest, plainSize := testutil.FileDigest(t, set.Plain)
	t.Logf("rootfs tar %s: %d bytes, %s", set.Plain, plainSize, plainDigest)

	csID := strings.TrimSpace(cs.sh(t, "CS import-layer -f '"+set.Plain+"' >/dev/null\nCS layers -q | tail -1\n", nil))
	var csDigest string
	for _, l := range cs.layers(t) {
		if l.ID == csID {
			csDigest = l.DiffDigest
		}
	}
	if csDigest != plainDigest {
		t.Errorf("peer records diff digest %q, want %s", csDigest, plainDigest)
	}
	theirs := testutil.Snapshot(t, filepath.Join(csGraph, "overlay", csID, "diff"))
	t.Logf("peer's diff dir: %d paths", len(theirs))
	if diffs := compareWithTar(t, theirs, set.Plain); len(diffs) > 0 {
		t.Logf("containers-storage's diff dir differs from the tar (reported, not asserted):\n%s",
			strings.Join(firstLines(diffs), "\n"))
	}

	forms := []struct {
		name, path string
	}{
		{"plain", set.Plain},
		{"gzip", set.Gzip},
		{"zstd", set.Zstd},
	}
	for _, form := range forms {
		t.Run(form.name, func(t *testing.T) {
			compressedDigest, compressedSize := testutil.FileDigest(t, form.path)
			f, err := os.Open(form.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			l, err := s.Put(layers.PutOptions{Names: []string{"rootfs-" + form.name}}, f)
			if err != nil {
				t.Fatal(err)
			}

			if got := l.UncompressedDigest.String(); got != plainDigest || l.UncompressedSize != plainSize {
				t.Errorf("diff digest %s size %d, want the plain tar's %s %d",
					got, l.UncompressedSize, plainDigest, plainSize)
			}
			if got := l.CompressedDigest.String(); got != compressedDigest || l.CompressedSize != compressedSize {
				t.Errorf("compressed digest %s size %d, want the file's %s %d",
					got, l.CompressedSize, compressedDigest, compressedSize)
			}

			ours := testutil.Snapshot(t, filepath.Join(graph, "overlay", l.ID, "diff"))
			if diffs := compareWithTar(t, ours, set.Plain); len(diffs) > 0 {
				t.Errorf("strata's diff dir (%s) differs from the tar:\n%s",
					form.name, strings.Join(firstLines(diffs), "\n"))
			}
			if diffs := ours.Diff(theirs); len(diffs) > 0 {
				t.Errorf("strata's diff dir (%s) differs from containers-storage's:\n%s",
					form.name, strings.Join(firstLines(diffs), "\n"))
			}
		})
	}
}

// firstLines keeps a long difference list readable.
func firstLines(diffs []string) []string {
	if len(diffs) > 50 {
		return append(diffs[:50:50], fmt.Sprintf("... and %d more", len(diffs)-50))
	}
	return diffs
}
