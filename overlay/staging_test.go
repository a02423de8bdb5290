package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// mustStage applies tb into a new staging area of d.
func mustStage(t *testing.T, d *Driver, tb *testutil.Tar) driver.Staged {
	t.Helper()
	st, err := d.Stage()
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	t.Cleanup(func() { st.Discard() })
	if _, err := st.ApplyDiff(driver.ApplyDiffOpts{Diff: tb.Reader()}); err != nil {
		t.Fatalf("staged ApplyDiff: %v", err)
	}
	return st
}

// rootOf returns the mode (with setuid/setgid/sticky), uid and gid of a
// layer's diff root.
func rootOf(t *testing.T, d *Driver, id string) (uint32, uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(d.diffDir(id), &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 0o7777, st.Uid, st.Gid
}

// stagingLeft lists what is in home/staging ("absent" when the dir is
// gone, as it should be when nothing is staged).
func stagingLeft(t *testing.T, d *Driver) []string {
	t.Helper()
	entries, err := os.ReadDir(d.stagingDir())
	if errors.Is(err, os.ErrNotExist) {
		return []string{"absent"}
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestStageCommitRootMode: a staged layer committed on a parent gets the
// same root as Create+ApplyDiff would give it: the parent's root mode and
// owner when the tar has no "./" entry, the entry's otherwise; and the same
// files.
func TestStageCommitRootMode(t *testing.T) {
	d := newTestDriver(t, Options{})
	// Parents made the classic way: P0 without a root entry, P1 with one.
	mustCreate(t, d, "P0", "")
	mustApply(t, d, "P0", testutil.NewTar().File("f", "x"))
	mustCreate(t, d, "P1", "")
	mustApply(t, d, "P1", testutil.NewTar().Dir("./", testutil.Mode(0o2750), testutil.Owner(1000, 1001)).File("f", "x"))

	for i, c := range []struct {
		name, parent string
		tar          func() *testutil.Tar
		want         [3]uint32
	}{
		{"parentless, no root entry", "", func() *testutil.Tar { return testutil.NewTar().File("a", "1") }, [3]uint32{0o555, 0, 0}},
		{"parentless, root entry", "", func() *testutil.Tar {
			return testutil.NewTar().Dir("./", testutil.Mode(0o711), testutil.Owner(5, 6)).File("a", "1")
		}, [3]uint32{0o711, 5, 6}},
		{"parent 0555 0:0, no root entry", "P0", func() *testutil.Tar { return testutil.NewTar().Dir("d/").File("d/a", "1") }, [3]uint32{0o555, 0, 0}},
		{"parent 2750 1000:1001, no root entry", "P1", func() *testutil.Tar { return testutil.NewTar().Dir("d/").File("d/a", "1") }, [3]uint32{0o2750, 1000, 1001}},
		{"parent 2750 1000:1001, root entry", "P1", func() *testutil.Tar {
			return testutil.NewTar().Dir(".", testutil.Mode(0o700), testutil.Owner(7, 8)).File("a", "1")
		}, [3]uint32{0o700, 7, 8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			classic, staged := fmt.Sprintf("classic%d", i), fmt.Sprintf("staged%d", i)
			mustCreate(t, d, classic, c.parent)
			mustApply(t, d, classic, c.tar())
			st := mustStage(t, d, c.tar())
			if err := st.Commit(staged, c.parent, nil); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			for _, id := range []string{classic, staged} {
				if m, u, g := rootOf(t, d, id); [3]uint32{m, u, g} != c.want {
					t.Errorf("%s root = %o %d:%d, want %o %d:%d", id, m, u, g, c.want[0], c.want[1], c.want[2])
				}
			}
			if diff := testutil.Snapshot(t, d.diffDir(classic)).Diff(testutil.Snapshot(t, d.diffDir(staged))); len(diff) > 0 {
				// The root's own mtime is the apply time when the tar does
				// not set it; everything else must match.
				diff = slices.DeleteFunc(diff, func(s string) bool { return strings.HasPrefix(s, ".: mtime ") })
				if len(diff) > 0 {
					t.Errorf("staged layer differs from Create+ApplyDiff: %v", diff)
				}
			}
			if !d.Exists(staged) {
				t.Error("committed layer does not exist")
			}
			if got := stagingLeft(t, d); !slices.Equal(got, []string{"absent"}) {
				t.Errorf("staging after commit holds %v", got)
			}
		})
	}
}

// TestStageLeavesNothing: a failed apply, a discarded stage and a commit
// that fails (the id exists) all leave home as it was.
func TestStageLeavesNothing(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "taken", "")
	top, links := listHome(t, d)

	st, err := d.Stage()
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.ApplyDiff(driver.ApplyDiffOpts{Diff: testutil.NewTar().File("f", "1").File("f", "2").Reader()})
	if !errors.Is(err, driver.ErrInvalidLayerData) {
		t.Errorf("apply of a repeated file = %v, want ErrInvalidLayerData", err)
	}
	if err := st.Discard(); err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(); err != nil {
		t.Errorf("second Discard: %v", err)
	}

	st = mustStage(t, d, testutil.NewTar().File("f", "1"))
	if err := st.Commit("taken", "", nil); !errors.Is(err, driver.ErrLayerExists) {
		t.Errorf("Commit onto an existing layer = %v, want ErrLayerExists", err)
	}
	if err := st.Discard(); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit("other", "", nil); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("Commit after Discard = %v, want ErrInvalidArgument", err)
	}

	if got := stagingLeft(t, d); !slices.Equal(got, []string{"absent"}) {
		t.Errorf("staging holds %v", got)
	}
	top2, links2 := listHome(t, d)
	if !slices.Equal(top, top2) || !slices.Equal(links, links2) {
		t.Errorf("home changed: %v %v -> %v %v", top, links, top2, links2)
	}
	if _, err := os.Stat(filepath.Join(d.diffDir("taken"), "f")); err == nil {
		t.Error("failed commit wrote into the existing layer")
	}
}

// TestStagingCleanupAtOpen: New removes a staging area whose lock nobody
// holds (a crash left it) and keeps one that is held, here by this same
// process (the lock is per open file, so this process's cleanup sees it
// too).
func TestStagingCleanupAtOpen(t *testing.T) {
	d := newTestDriver(t, Options{})
	live := mustStage(t, d, testutil.NewTar().File("f", "live"))
	dead, err := d.Stage()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.ApplyDiff(driver.ApplyDiffOpts{Diff: testutil.NewTar().File("f", "dead").Reader()}); err != nil {
		t.Fatal(err)
	}
	// What a crash leaves: the files, and a lock nobody holds.
	deadDir := dead.(*staged).dir
	dead.(*staged).lock.Close()
	liveDir := live.(*staged).dir

	reopened := openTestDriver(t, d.home, Options{})
	if _, err := os.Stat(deadDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned staging dir survives New: %v", err)
	}
	if rec := reopened.Recovered(); len(rec) != 1 || !strings.Contains(rec[0], deadDir) {
		t.Errorf("Recovered() = %q, want the removal of %s", rec, deadDir)
	}
	if _, err := os.Stat(filepath.Join(liveDir, diffName, "f")); err != nil {
		t.Errorf("staging dir in use was touched by New: %v", err)
	}
	if err := live.Commit("L", "", nil); err != nil {
		t.Fatalf("Commit after another New: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(d.diffDir("L"), "f")); err != nil || string(b) != "live" {
		t.Errorf("committed file = %q, %v", b, err)
	}
	openTestDriver(t, d.home, Options{})
	if got := stagingLeft(t, d); !slices.Equal(got, []string{"absent"}) {
		t.Errorf("staging holds %v", got)
	}
}
