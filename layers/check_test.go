package layers

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

func kinds(problems []Problem) []string {
	var out []string
	for _, p := range problems {
		out = append(out, p.Kind+" "+p.ID[:4])
	}
	sort.Strings(out)
	return out
}

// TestCheck damages a store by hand in each way Check knows and checks
// that it reports each, that repair fixes each, and that a second check
// finds nothing.
func TestCheck(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, err := openOverlayStore(graph, run)
	if err != nil {
		t.Fatal(err)
	}
	id := func(c string) string { return strings.Repeat(c, 64) }
	tar := testutil.NewTar().File("f", "x").Bytes()
	for _, c := range []string{"a", "b", "c", "d"} {
		parent := ""
		if c == "c" {
			parent = id("b")
		}
		if _, err := s.Put(PutOptions{ID: id(c), Parent: parent}, bytes.NewReader(tar)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Mount(id("d"), MountOptions{}); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(graph, "overlay")

	// b's files vanish (C27): b and c above it are missing files.
	if err := os.RemoveAll(filepath.Join(home, id("b"))); err != nil {
		t.Fatal(err)
	}
	// An orphan driver dir with its short link, and an orphan tar-split.
	if err := s.Driver().Create(id("e"), "", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(graph, "overlay-layers", id("f")+".tar-split.gz"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A dangling short link.
	if err := os.Symlink("../"+id("9")+"/diff", filepath.Join(home, "l", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ")); err != nil {
		t.Fatal(err)
	}
	// a is mounted behind the store's back (a mounter that died before
	// counting); d's count survives an unmount behind its back.
	if _, err := s.Driver().Mount(id("a"), driverMountOpts()); err != nil {
		t.Fatal(err)
	}
	if err := s.Driver().Unmount(id("d")); err != nil {
		t.Fatal(err)
	}

	want := []string{"dangling-link 9999", "dangling-link bbbb", "leaked-mount aaaa", "missing-files bbbb", "missing-files cccc",
		"orphan-dir eeee", "orphan-tar-split ffff", "stale-mount dddd"}
	problems, err := s.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(problems); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Check = %v\nwant %v", got, want)
	}
	if _, err := s.Get(id("b")); err != nil {
		t.Errorf("a check without repair changed the store: %v", err)
	}

	problems, err = s.Check(true)
	if err != nil {
		t.Fatal(err)
	}
	// Files without a record are a lost record, not a crash leftover:
	// reported, never deleted.
	kept := map[string]bool{"orphan-dir": true, "orphan-tar-split": true}
	for _, p := range problems {
		if kept[p.Kind] {
			if p.Repaired || p.Detail != lostRecord {
				t.Errorf("orphan deleted or unexplained: %s", p)
			}
		} else if !p.Repaired {
			t.Errorf("not repaired: %s", p)
		}
	}
	if problems, err := s.Check(false); err != nil || strings.Join(kinds(problems), ",") != "orphan-dir eeee,orphan-tar-split ffff" {
		t.Errorf("after repair: %v, %v; want only the two orphans", kinds(problems), err)
	}
	if !s.Driver().Exists(id("e")) {
		t.Error("orphan dir of e deleted")
	}
	if _, err := os.Stat(s.tarSplitPath(id("f"))); err != nil {
		t.Errorf("orphan tar-split of f deleted: %v", err)
	}
	for _, c := range []string{"a", "d"} {
		if _, err := s.Get(id(c)); err != nil {
			t.Errorf("layer %s lost by the repair: %v", c, err)
		}
	}
	for _, c := range []string{"b", "c"} {
		if _, err := s.Get(id(c)); err == nil {
			t.Errorf("layer %s with missing files kept", c)
		}
	}
	if mounted, _ := s.Driver().Mounted(id("a")); mounted {
		t.Error("leaked mount of a still mounted")
	}
}

func driverMountOpts() driver.MountOpts { return driver.MountOpts{ReadOnly: true} }
