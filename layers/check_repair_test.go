package layers

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// findProblem returns the first problem of kind, or fails the test.
func findProblem(t *testing.T, problems []Problem, kind string) Problem {
	t.Helper()
	for _, p := range problems {
		if p.Kind == kind {
			return p
		}
	}
	t.Fatalf("no %s problem in %v", kind, problems)
	return Problem{}
}

// TestCheckEmptyLayersJSONC25: a layers.json emptied by hand (zero
// bytes, null or []) makes Check report the layer dirs it cannot place,
// and repair deletes none of them nor their tar-split files.
func TestCheckEmptyLayersJSONC25(t *testing.T) {
	testutil.RequireRoot(t)
	for _, content := range []string{"", "null", "[]"} {
		t.Run(fmt.Sprintf("C25 %q", content), func(t *testing.T) {
			graph, run := testutil.TempStore(t)
			s, err := openOverlayStore(graph, run)
			if err != nil {
				t.Fatal(err)
			}
			var made []string
			for i := range 3 {
				l, err := s.Put(PutOptions{}, bytes.NewReader(testutil.NewTar().File("f", fmt.Sprint(i)).Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				made = append(made, l.ID)
			}
			writeLayersJSON(t, graph, content)
			s, err = openOverlayStore(graph, run)
			if err != nil {
				t.Fatal(err)
			}
			for _, repair := range []bool{false, true} {
				problems, err := s.Check(repair)
				if err != nil {
					t.Fatalf("Check(%v): %v", repair, err)
				}
				p := findProblem(t, problems, "no-records")
				want := "layers.json has no records but 3 layer directories exist; not deleting them: restore layers.json"
				if p.Detail != want || p.Repaired {
					t.Errorf("Check(%v) no-records problem = %s, want detail %q, not repaired", repair, p, want)
				}
				for _, p := range problems {
					if p.Repaired {
						t.Errorf("Check(%v) repaired %s", repair, p)
					}
				}
			}
			for _, id := range made {
				if !s.Driver().Exists(id) {
					t.Errorf("layer dir %s deleted", id)
				}
				if _, err := os.Stat(s.tarSplitPath(id)); err != nil {
					t.Errorf("tar-split of %s: %v", id, err)
				}
			}
		})
	}
}

// TestCheckKeepsOrphans: orphan dirs are reported, never deleted: a
// mounted one as in use, an unmounted one as a possibly lost record.
func TestCheckKeepsOrphans(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, err := openOverlayStore(graph, run)
	if err != nil {
		t.Fatal(err)
	}
	mustPutTar(t, s, strings.Repeat("a", 64))
	busy, idle := strings.Repeat("b", 64), strings.Repeat("c", 64)
	for _, id := range []string{busy, idle} {
		if err := s.Driver().Create(id, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Driver().Mount(busy, driverMountOpts()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Driver().Unmount(busy) })

	problems, err := s.Check(true)
	if err != nil {
		t.Fatal(err)
	}
	var sawBusy, sawIdle bool
	for _, p := range problems {
		switch {
		case p.Kind == "orphan-dir" && p.ID == busy:
			sawBusy = true
			if p.Repaired || !strings.Contains(p.String(), "mounted, so in use; not deleting it") {
				t.Errorf("mounted orphan: %s", p)
			}
		case p.Kind == "orphan-dir" && p.ID == idle:
			sawIdle = true
			if p.Repaired || p.Detail != lostRecord {
				t.Errorf("idle orphan deleted or unexplained: %s", p)
			}
		}
	}
	if !sawBusy || !sawIdle {
		t.Errorf("problems = %v", problems)
	}
	if !s.Driver().Exists(busy) || !s.Driver().Exists(idle) {
		t.Errorf("after repair: busy exists %v, idle exists %v (want both kept)",
			s.Driver().Exists(busy), s.Driver().Exists(idle))
	}
}

func mustPutTar(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Put(PutOptions{ID: id}, bytes.NewReader(testutil.NewTar().File("f", id).Bytes())); err != nil {
		t.Fatal(err)
	}
}

// TestCheckRepairsCorruptMountCountsC28: a garbage mountpoints.json makes
// Mount fail naming the file and the fix; Check reports it; repair sets it
// aside and counts each mounted layer once.
func TestCheckRepairsCorruptMountCountsC28(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, err := openOverlayStore(graph, run)
	if err != nil {
		t.Fatal(err)
	}
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	mustPutTar(t, s, a)
	mustPutTar(t, s, b)
	pathA, err := s.Mount(a, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeMountpoints(t, s, "garbage\n")

	_, err = s.Mount(b, MountOptions{})
	if !errors.Is(err, driver.ErrStoreCorrupt) || !strings.Contains(err.Error(), s.mountsPath()) ||
		!strings.Contains(err.Error(), "run strata check --repair") {
		t.Fatalf("C28 Mount with corrupt counts = %v", err)
	}
	problems, err := s.Check(false)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if p := findProblem(t, problems, "corrupt-mount-counts"); p.Repaired || p.Path != s.mountsPath() {
		t.Errorf("Check: %s", p)
	}

	problems, err = s.Check(true)
	if err != nil {
		t.Fatalf("Check(repair): %v", err)
	}
	p := findProblem(t, problems, "corrupt-mount-counts")
	aside, _ := filepath.Glob(s.mountsPath() + ".corrupt-*")
	if !p.Repaired || len(aside) != 1 || !strings.Contains(p.Detail, "moved to "+aside[0]) ||
		!strings.Contains(p.Detail, "1 mounted layers now count 1 user each") {
		t.Errorf("Check(repair): %s; set aside: %v", p, aside)
	}
	if data, _ := os.ReadFile(aside[0]); string(data) != "garbage\n" {
		t.Errorf("set-aside file holds %q", data)
	}
	if n, err := s.MountCount(a); n != 1 || err != nil {
		t.Errorf("MountCount(a) = %d, %v; want 1", n, err)
	}
	if again, err := s.Mount(a, MountOptions{}); err != nil || again != pathA {
		t.Errorf("Mount(a) again = %q, %v; want %q", again, err, pathA)
	}
	if _, err := s.Mount(b, MountOptions{}); err != nil {
		t.Errorf("Mount(b) after repair: %v", err)
	}
	if problems, err := s.Check(false); err != nil || len(problems) != 0 {
		t.Errorf("after repair: %v, %v", problems, err)
	}
	for _, id := range []string{a, a, b} {
		if _, err := s.Unmount(id, false); err != nil {
			t.Errorf("Unmount %s: %v", id[:4], err)
		}
	}
	if mounted, _ := s.Driver().Mounted(a); mounted {
		t.Error("a still mounted after its two users unmounted")
	}
}

// TestCheckReportsOpenRecoveriesC26: what a read-write open removed is in
// Recovered and at the head of Check's report, marked repaired at open.
func TestCheckReportsOpenRecoveriesC26(t *testing.T) {
	graph, run := t.TempDir(), t.TempDir()
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	for _, id := range []string{"A", "B"} {
		if err := drv.Create(id, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	writeLayersJSON(t, graph, `[{"id":"A"},{"id":"B","parent":"A","flags":{"incomplete":true}}]`)
	s, _ := openFake(t, graph, run, false)

	rec := s.Recovered()
	if len(rec) != 1 || rec[0].Kind != "incomplete" || rec[0].ID != "B" || !rec[0].AtOpen || !rec[0].Repaired {
		t.Fatalf("C26 Recovered = %v", rec)
	}
	problems, err := s.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	want := "incomplete B (removed the layer a crash left half made or half deleted) (repaired at open)"
	if len(problems) != 1 || problems[0].String() != want {
		t.Errorf("C26 Check = %v, want [%s]", problems, want)
	}
}
