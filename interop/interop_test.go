package interop

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/testutil"
)

// capV2 is a security.capability value granting cap_net_raw.
var capV2 = string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// baseLayer has every entry type: dirs, files with xattrs and setuid,
// hardlinks, symlinks, devices and a fifo.
func baseLayer() *testutil.Tar {
	return testutil.NewTar().
		Dir("etc/").
		File("etc/passwd", "root:x:0:0::/root:/bin/sh\n").
		File("etc/gone", "to be deleted").
		Dir("usr/", testutil.Mode(0o755)).
		Dir("usr/bin/").
		File("usr/bin/ping", "ping", testutil.Mode(0o4755), testutil.Xattr("security.capability", capV2),
			testutil.Xattr("user.note", "hi")).
		Hardlink("usr/bin/ping6", "usr/bin/ping").
		Symlink("usr/bin/sh", "busybox").
		File("usr/bin/sg", "sg", testutil.Mode(0o6755), testutil.Owner(1000, 0)).
		Dir("opq/").
		File("opq/old", "old").
		Dir("dev/").
		CharDev("dev/null", 1, 3, testutil.Mode(0o666)).
		BlockDev("dev/sda", 8, 0).
		Fifo("dev/fifo")
}

// topLayer deletes, makes a directory opaque and adds files.
func topLayer() *testutil.Tar {
	return testutil.NewTar().
		Dir("etc/").
		Whiteout("etc/gone").
		Dir("opq/").
		Opaque("opq/").
		File("opq/new", "new").
		File("big", strings.Repeat("0123456789", 10000), testutil.Owner(1885580785, 4294967294))
}

// TestStrataStoreReadByContainersStorage writes a store with strata and
// checks the peer sees the same layers, reproduces the imported tars byte
// for byte, and mounts the same content.
func TestStrataStoreReadByContainersStorage(t *testing.T) {
	graph, run := testutil.TempStore(t)
	cs := needPeer(t, graph, run)
	s := openStore(t, graph, run)

	base, top := baseLayer().Bytes(), topLayer().Bytes()
	l1, err := s.Put(layers.PutOptions{Names: []string{"base"}}, bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.Put(layers.PutOptions{Parent: l1.ID, Names: []string{"top"}}, bytes.NewReader(testutil.Gzip(top)))
	if err != nil {
		t.Fatal(err)
	}

	seen := cs.layers(t)
	want := []csLayer{
		{ID: l1.ID, Names: []string{"base"}, DiffDigest: sha256Hex(base), DiffSize: int64(len(base))},
		{ID: l2.ID, Names: []string{"top"}, Parent: l1.ID, DiffDigest: sha256Hex(top), DiffSize: int64(len(top))},
	}
	if len(seen) != len(want) {
		t.Fatalf("peer lists %d layers, want %d: %+v", len(seen), len(want), seen)
	}
	for i := range want {
		g := seen[i]
		if g.ID != want[i].ID || g.Parent != want[i].Parent || !slices.Equal(g.Names, want[i].Names) ||
			g.DiffDigest != want[i].DiffDigest || g.DiffSize != want[i].DiffSize {
			t.Errorf("peer layer %d = %+v, want %+v", i, g, want[i])
		}
	}

	// The peer's diff reassembles the tar-split strata recorded.
	for _, c := range []struct {
		id   string
		want []byte
	}{{l1.ID, base}, {l2.ID, top}} {
		out := filepath.Join(t.TempDir(), "diff.tar")
		cs.sh(t, "CS diff -u -f '"+out+"' "+c.id, nil)
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if sha256Hex(got) != sha256Hex(c.want) {
			t.Errorf("peer diff of %s: %d bytes %s, want the imported %d bytes %s",
				c.id, len(got), sha256Hex(got), len(c.want), sha256Hex(c.want))
		}
	}

	// Both mount the stack with the same content.
	csView := cs.sh(t, "mp=$(CS mount "+l2.ID+")\n"+listingScript, nil)
	mp, err := s.Mount(l2.ID, layers.MountOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	strataView := mountListing(t, mp)
	if _, err := s.Unmount(l2.ID, false); err != nil {
		t.Fatal(err)
	}
	if csView != strataView {
		t.Errorf("merged views differ\npeer:\n%s\nstrata:\n%s", csView, strataView)
	}
	for _, line := range []string{"./etc/gone", "./opq/old"} {
		if strings.Contains(csView, line+" ") {
			t.Errorf("%s is still visible in the peer's mount", line)
		}
	}
}

// TestContainersStorageStoreReadByStrata lets the peer import, create,
// name and write through a mount, then lists, mounts, exports and deletes
// those layers with strata.
func TestContainersStorageStoreReadByStrata(t *testing.T) {
	graph, run := testutil.TempStore(t)
	cs := needPeer(t, graph, run)
	base, top := baseLayer().Bytes(), topLayer().Bytes()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"base.tar": base, "top.tar.gz": testutil.Gzip(top)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ids := strings.Fields(cs.sh(t, `
CS import-layer -n base -f '`+dir+`/base.tar' >/dev/null
base=$(CS layers -q | tail -1)
CS import-layer -n top -f '`+dir+`/top.tar.gz' "$base" >/dev/null
top=$(CS layers -q | tail -1)
CS create-layer -n rw "$top" >/dev/null
rw=$(CS layers -q | tail -1)
mp=$(CS mount "$rw")
echo changed > "$mp/etc/passwd"
rm "$mp/usr/bin/sg"
mkdir "$mp/newdir"
ln "$mp/opq/new" "$mp/newdir/link"
CS unmount "$rw" >/dev/null
echo "$base $top $rw"
`, nil))
	if len(ids) != 3 {
		t.Fatalf("peer script printed %q, want three ids", ids)
	}

	s := openStore(t, graph, run)
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("strata lists %d layers, want 3", len(list))
	}
	for i, want := range []struct{ id, parent, name string }{
		{ids[0], "", "base"}, {ids[1], ids[0], "top"}, {ids[2], ids[1], "rw"},
	} {
		l := list[i]
		if l.ID != want.id || l.Parent != want.parent || !slices.Equal(l.Names, []string{want.name}) {
			t.Errorf("layer %d = id %s parent %q names %v, want %+v", i, l.ID, l.Parent, l.Names, want)
		}
	}

	// Imported layers export byte for byte.
	for i, want := range [][]byte{base, top} {
		var buf bytes.Buffer
		source, err := s.Diff(ids[i], &buf)
		if err != nil {
			t.Fatal(err)
		}
		if source != layers.DiffFromTarSplit || sha256Hex(buf.Bytes()) != sha256Hex(want) {
			t.Errorf("strata diff of peer layer %d: %s from %s, want %s from tar-split",
				i, sha256Hex(buf.Bytes()), source, sha256Hex(want))
		}
	}

	// The layer changed through the peer's mount exports from its diff dir.
	changes, err := s.Changes(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind.String()+" "+c.Path)
	}
	wantChanges := []string{"C /etc", "C /etc/passwd", "A /newdir", "A /newdir/link", "C /opq", "C /opq/new",
		"C /usr", "C /usr/bin", "D /usr/bin/sg"}
	if !slices.Equal(got, wantChanges) {
		t.Errorf("changes of the rw layer\n got %q\nwant %q", got, wantChanges)
	}

	// Mounting in strata shows what the peer's mount shows.
	csView := cs.sh(t, "mp=$(CS mount "+ids[2]+")\n"+listingScript, nil)
	mp, err := s.Mount(ids[2], layers.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	strataView := mountListing(t, mp)
	if _, err := s.Unmount(ids[2], false); err != nil {
		t.Fatal(err)
	}
	if csView != strataView {
		t.Errorf("merged views differ\npeer:\n%s\nstrata:\n%s", csView, strataView)
	}

	for _, id := range []string{ids[2], ids[1], ids[0]} {
		if err := s.Delete(id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if left := cs.layers(t); len(left) != 0 {
		t.Errorf("peer still lists %d layers after strata deleted them", len(left))
	}
}
