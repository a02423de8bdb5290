package layers

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// stagingChildEnv makes the test binary a staging child: "GRAPH|RUN|ID".
// It Puts layer ID from stdin and is killed by the parent mid-apply.
const stagingChildEnv = "STRATA_STAGING_CHILD"

// watchdog bounds waits that only a bug makes long; it is never the proof
// of anything.
const watchdog = 2 * time.Minute

// bigTar is a layer whose file is large enough that a reader cut in its
// middle stops the apply there.
func bigTar() []byte {
	return testutil.NewTar().File("small", "s").File("big", strings.Repeat("b", 2<<20)).Bytes()
}

// gateReader returns the first n bytes of data, then closes reached and
// blocks until release is closed before returning the rest.
type gateReader struct {
	data    []byte
	n       int
	off     int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(data []byte, n int) *gateReader {
	return &gateReader{data: data, n: n, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	if g.off >= g.n {
		g.once.Do(func() { close(g.reached) })
		<-g.release
	}
	end := len(g.data)
	if g.off < g.n {
		end = g.n
	}
	k := copy(p, g.data[g.off:end])
	g.off += k
	return k, nil
}

// stagingLeft lists home/staging of the store's overlay driver; "absent"
// when it is gone, as it is when nothing is staged.
func stagingLeft(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.GraphRoot(), "overlay", "staging"))
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

// assertNothingOf checks that layer id left no record, no driver dir, no
// tar-split file, and that no staging area is left.
func assertNothingOf(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Get(id); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("Get(%s) = %v, want ErrLayerUnknown", id, err)
	}
	if s.Driver().Exists(id) {
		t.Errorf("driver dir of %s left", id)
	}
	if _, err := os.Stat(s.tarSplitPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tar-split of %s left: %v", id, err)
	}
	if got := stagingLeft(t, s); len(got) != 1 || got[0] != "absent" {
		t.Errorf("staging holds %v", got)
	}
	problems, err := s.Check(false)
	// What the open repaired (a dead process's staging dir) is reported,
	// and is no problem left.
	problems = slices.DeleteFunc(problems, func(p Problem) bool { return p.AtOpen && p.Repaired })
	if err != nil || len(problems) != 0 {
		t.Errorf("Check = %v, %v", problems, err)
	}
}

// TestPutsOverlap: while one Put is stuck mid-apply (its reader blocks),
// a second Put from another goroutine completes: the write lock is not
// held while applying.
func TestPutsOverlap(t *testing.T) {
	s, _ := overlayStore(t)
	gate := newGate(bigTar(), 1<<20)
	slowDone := make(chan error, 1)
	go func() {
		_, err := s.Put(PutOptions{ID: "slow"}, gate)
		slowDone <- err
	}()
	select {
	case <-gate.reached:
	case <-time.After(watchdog):
		t.Fatal("the slow Put never read its first MiB")
	}

	fastDone := make(chan error, 1)
	go func() {
		_, err := s.Put(PutOptions{ID: "fast", Names: []string{"quick"}}, sampleTar().Reader())
		fastDone <- err
	}()
	select {
	case err := <-fastDone:
		if err != nil {
			t.Fatalf("second Put: %v", err)
		}
	case <-time.After(watchdog):
		close(gate.release)
		t.Fatal("second Put waited for the first one's apply: Puts do not overlap")
	}
	if list, err := s.List(); err != nil || ids(list) != "fast" {
		t.Errorf("while the slow Put applies, List = %s, %v; want only fast", ids(list), err)
	}

	close(gate.release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow Put: %v", err)
	}
	if list, err := s.List(); err != nil || ids(list) != "fast,slow" {
		t.Errorf("List = %s, %v", ids(list), err)
	}
	diff, err := s.Driver().DiffPath("slow")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(diff, "big")); err != nil || fi.Size() != 2<<20 {
		t.Errorf("slow layer's big file: %v, %v", fi, err)
	}
	if got := stagingLeft(t, s); len(got) != 1 || got[0] != "absent" {
		t.Errorf("staging holds %v after both Puts", got)
	}
}

// TestStagedPutFailures: each failure, before or at the commit, leaves no
// record, no layer dir, no tar-split file and no staging area.
func TestStagedPutFailures(t *testing.T) {
	s, _ := overlayStore(t)
	mustPut(t, s, PutOptions{ID: "base", Names: []string{"taken"}})
	good := sampleTar().Bytes()
	wrong := digest.FromString("something else")
	// stageThenPut stages good and commits it with opts.
	stageThenPut := func(opts PutOptions) error {
		st, err := s.Stage(StageOptions{}, bytes.NewReader(good))
		if err != nil {
			return err
		}
		_, err = s.PutStaged(opts, st)
		return err
	}

	for _, c := range []struct {
		name string
		put  func() error
		want error
	}{
		{"wrong uncompressed digest", func() error {
			_, err := s.Put(PutOptions{ID: "x1", ExpectedUncompressedDigest: wrong}, bytes.NewReader(good))
			return err
		}, driver.ErrInvalidLayerData},
		{"C13 tar cut inside an entry", func() error {
			_, err := s.Put(PutOptions{ID: "x2"}, bytes.NewReader(bigTar()[:1<<20]))
			return err
		}, driver.ErrInvalidLayerData},
		{"C07 repeated file", func() error {
			_, err := s.Put(PutOptions{ID: "x3"}, testutil.NewTar().File("f", "1").File("f", "2").Reader())
			return err
		}, driver.ErrInvalidLayerData},
		{"id taken between stage and commit", func() error {
			return stageThenPut(PutOptions{ID: "base"})
		}, driver.ErrLayerExists},
		{"parent gone between stage and commit", func() error {
			return stageThenPut(PutOptions{ID: "x5", Parent: "nonesuch"})
		}, driver.ErrLayerUnknown},
		{"name taken at commit", func() error {
			return stageThenPut(PutOptions{ID: "x6", Names: []string{"taken"}})
		}, driver.ErrNameInUse},
		{"commit expects another digest than staged", func() error {
			return stageThenPut(PutOptions{ID: "x7", ExpectedUncompressedDigest: wrong})
		}, driver.ErrInvalidLayerData},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.put(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			for _, id := range []string{"x1", "x2", "x3", "x5", "x6", "x7"} {
				assertNothingOf(t, s, id)
			}
			if list, err := s.List(); err != nil || ids(list) != "base" {
				t.Errorf("List = %s, %v", ids(list), err)
			}
		})
	}
}

// TestPutFailsEarly: a clash Put can see under the read lock fails before
// a byte of the diff is read.
func TestPutFailsEarly(t *testing.T) {
	s, _ := overlayStore(t)
	mustPut(t, s, PutOptions{ID: "base", Names: []string{"taken"}})
	for _, c := range []struct {
		name string
		opts PutOptions
		want error
	}{
		{"id exists", PutOptions{ID: "base"}, driver.ErrLayerExists},
		{"C19 bad id", PutOptions{ID: "../../x"}, driver.ErrInvalidArgument},
		{"no parent", PutOptions{ID: "y", Parent: "nonesuch"}, driver.ErrLayerUnknown},
		{"name taken", PutOptions{ID: "y", Names: []string{"taken"}}, driver.ErrNameInUse},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &testutil.CountingReader{R: sampleTar().Reader()}
			if _, err := s.Put(c.opts, r); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if r.N != 0 {
				t.Errorf("%d bytes read before failing", r.N)
			}
		})
	}
}

// TestStagingChild is the process TestStagingCrash kills mid-apply; it
// does nothing unless started by it.
func TestStagingChild(t *testing.T) {
	spec := os.Getenv(stagingChildEnv)
	if spec == "" {
		t.Skip("run by TestStagingCrash")
	}
	parts := strings.Split(spec, "|")
	s, err := openOverlayStore(parts[0], parts[1])
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(PutOptions{ID: parts[2]}, os.Stdin)
	t.Fatalf("Put returned %v; the parent should have killed this process", err)
}

// TestStagingCrash: a process killed while applying leaves its staging
// area; another process opening the store meanwhile keeps it (the owner
// still holds its lock); once the owner is dead the next open removes it
// and the store is as before.
func TestStagingCrash(t *testing.T) {
	testutil.RequireRoot(t)
	graph, run := testutil.TempStore(t)
	s, _ := openOverlay(t, graph, run)
	mustPut(t, s, PutOptions{ID: "base"})

	cmd := exec.Command(os.Args[0], "-test.run=^TestStagingChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), stagingChildEnv+"="+graph+"|"+run+"|crashed")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	tar := bigTar()
	if _, err := stdin.Write(tar[:1<<20]); err != nil {
		t.Fatalf("feeding the child: %v (%s)", err, out.String())
	}

	// Wait until the child's apply has written part of the big file.
	var area string
	for deadline := time.Now().Add(watchdog); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no staging area with a partial file appeared; child output:\n%s", out.String())
		}
		dirs, _ := filepath.Glob(filepath.Join(graph, "overlay", "staging", "*", "diff", "big"))
		if len(dirs) == 1 {
			area = filepath.Dir(filepath.Dir(dirs[0]))
			break
		}
	}

	// Another opener while the child lives: the area stays.
	s2, _ := openOverlay(t, graph, run)
	if _, err := os.Stat(area); err != nil {
		t.Fatalf("staging area of a live process was removed: %v", err)
	}
	if list, err := s2.List(); err != nil || ids(list) != "base" {
		t.Errorf("List while the child applies = %s, %v", ids(list), err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	killed = true
	s3, _ := openOverlay(t, graph, run)
	if _, err := os.Stat(area); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging area of the killed process survives the next open: %v", err)
	}
	if rec := s3.Recovered(); len(rec) != 1 || rec[0].Kind != "driver-repair" || !strings.Contains(rec[0].Detail, area) {
		t.Errorf("Recovered() = %v, want the removal of %s", rec, area)
	}
	assertNothingOf(t, s3, "crashed")
	if list, err := s3.List(); err != nil || ids(list) != "base" {
		t.Errorf("List after the crash = %s, %v", ids(list), err)
	}
}
