package layers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

const helperEnv = "STRATA_LAYERS_HELPER"

// TestStoreHelperProcess is not a test: it is the second process of the
// tests below, doing what STRATA_LAYERS_HELPER says on the store at
// STORE_GRAPH / STORE_RUN.
func TestStoreHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("helper process only")
	}
	s, _ := openFakeOrReal(t, os.Getenv("STORE_GRAPH"), os.Getenv("STORE_RUN"))
	id := os.Getenv("LAYER_ID")
	var err error
	switch role {
	case "put":
		_, err = s.Put(PutOptions{ID: id, Parent: os.Getenv("PARENT_ID")}, sampleTar().Reader())
	case "crash-put":
		afterIncompleteSave = func(string) { os.Exit(7) }
		_, err = s.Put(PutOptions{ID: id}, sampleTar().Reader())
		err = fmt.Errorf("Put returned %v instead of crashing", err)
	case "unmount":
		_, err = s.Unmount(id, false)
	case "churn":
		err = churn(s, os.Getenv("CHURN_SECONDS"), os.Getenv("CHURN_TAG"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0)
}

// openFakeOrReal opens the store with the driver the parent test uses:
// the fake unless STORE_DRIVER says "overlay".
func openFakeOrReal(t *testing.T, graph, run string) (*Store, driver.Driver) {
	if os.Getenv("STORE_DRIVER") == "overlay" {
		return openOverlay(t, graph, run)
	}
	s, drv := openFake(t, graph, run, false)
	return s, drv
}

// inChild runs role in a second process against s's roots and returns its
// exit code.
func inChild(t *testing.T, s *Store, role string, env ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "STORE_GRAPH="+s.GraphRoot(), "STORE_RUN="+s.RunRoot())
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Logf("child %s: exit %d: %s", role, exit.ExitCode(), out)
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("child %s: %v", role, err)
	}
	return 0
}

func TestSecondProcessSeesNewLayer(t *testing.T) {
	s, _ := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "base"})
	if _, err := s.Get("child"); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Fatal(err)
	}
	if code := inChild(t, s, "put", "LAYER_ID=child", "PARENT_ID=base"); code != 0 {
		t.Fatalf("child exit %d", code)
	}
	l, err := s.Get("child")
	if err != nil || l.Parent != "base" {
		t.Fatalf("Get(child) in the first process = %v, %v", l, err)
	}
	if err := s.Delete("base"); !errors.Is(err, driver.ErrLayerHasChildren) {
		t.Errorf("Delete(base) = %v, want ErrLayerHasChildren", err)
	}
}

// TestCrashAfterIncompleteSave stops a second process right after it saved
// the incomplete record of a new layer, as a crash would.
func TestCrashAfterIncompleteSave(t *testing.T) {
	s, drv := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "base"})
	if code := inChild(t, s, "crash-put", "LAYER_ID=crashed"); code != 7 {
		t.Fatalf("child exit %d, want the crash hook's 7", code)
	}
	// Make the leftover look like a crash mid-apply: files exist.
	if err := drv.Create("crashed", "", nil); err != nil {
		t.Fatal(err)
	}

	ro, _ := openFake(t, s.GraphRoot(), s.RunRoot(), true)
	if list, err := ro.List(); err != nil || ids(list) != "base" {
		t.Fatalf("read-only List = %s, %v", ids(list), err)
	}
	if _, err := ro.Get("crashed"); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("Get(crashed) = %v", err)
	}
	if !drv.Exists("crashed") {
		t.Fatal("read-only open removed files")
	}

	// Any write (here: the store of the first process) cleans up.
	if _, err := s.Create(CreateOptions{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	if drv.Exists("crashed") {
		t.Error("crashed layer's files survive a write")
	}
	if _, err := os.Stat(s.tarSplitPath("crashed")); !os.IsNotExist(err) {
		t.Errorf("crashed layer's tar-split survives: %v", err)
	}
	if list, err := s.List(); err != nil || ids(list) != "base,after" {
		t.Errorf("List = %s, %v", ids(list), err)
	}
}

// TestMountCountsTwoProcessesC28: process 1 mounts L, process 2 unmounts
// it, process 1 then saves another change; L's count stays 0.
func TestMountCountsTwoProcessesC28(t *testing.T) {
	s, drv := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "L"})
	if _, err := s.Mount("L", MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if code := inChild(t, s, "unmount", "LAYER_ID=L"); code != 0 {
		t.Fatalf("child exit %d", code)
	}
	if err := s.SetNames("L", []string{"renamed"}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, PutOptions{ID: "other"})
	if n, err := s.MountCount("L"); err != nil || n != 0 {
		t.Fatalf("C28 count = %d, %v; want 0", n, err)
	}
	if drv.mountMode("L") != "" {
		t.Error("C28 L still mounted")
	}
}

// TestNoDeadlockC29: two processes with 4 goroutines each create, apply,
// mount, unmount and delete layers while others list, delete leaves and
// look up by digest. The whole run must finish under a 2-minute watchdog.
// STRATA_C29_SECONDS sets the run time (default 5; the case asks for 60).
func TestNoDeadlockC29(t *testing.T) {
	s, _ := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "base"})
	seconds := os.Getenv("STRATA_C29_SECONDS")
	if seconds == "" {
		seconds = "5"
	}
	child := make(chan int, 1)
	go func() { child <- inChild(t, s, "churn", "CHURN_SECONDS="+seconds, "CHURN_TAG=p2") }()

	done := make(chan error, 1)
	go func() { done <- churn(s, seconds, "p1") }()
	watchdog := time.After(2 * time.Minute)
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("C29 first process: %v", err)
			}
		case code := <-child:
			if code != 0 {
				t.Errorf("C29 second process exit %d", code)
			}
		case <-watchdog:
			t.Fatal("C29: deadlock, the run did not finish in 2 minutes")
		}
	}
}

// churn runs the C29 workload for the given seconds: goroutines 0 and 1
// create+apply+mount+unmount+delete, 2 and 3 list, delete a leaf and look
// up by digest.
func churn(s *Store, seconds, tag string) error {
	n, _ := strconv.Atoi(seconds)
	stop := time.Now().Add(time.Duration(n) * time.Second)
	base, err := s.Get("base")
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				var err error
				if g < 2 {
					err = churnWriter(s, fmt.Sprintf("%s-%d-%d", tag, g, i))
				} else {
					err = churnReader(s, base.UncompressedDigest)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func churnWriter(s *Store, id string) error {
	if _, err := s.Put(PutOptions{ID: id, Parent: "base"}, sampleTar().Reader()); err != nil {
		return err
	}
	if _, err := s.Mount(id, MountOptions{}); err != nil && !errors.Is(err, driver.ErrLayerUnknown) {
		return err
	}
	if _, err := s.Unmount(id, false); err != nil &&
		!errors.Is(err, driver.ErrLayerUnknown) && !errors.Is(err, driver.ErrLayerNotMounted) {
		return err
	}
	if err := s.Delete(id); err != nil && !errors.Is(err, driver.ErrLayerUnknown) {
		return err
	}
	return nil
}

// churnReader deletes some leaf that is not mounted (a reader of the other
// process may have taken it first) besides reading.
func churnReader(s *Store, d digest.Digest) error {
	list, err := s.List()
	if err != nil {
		return err
	}
	if len(list) > 1 {
		leaf := list[len(list)-1].ID
		err := s.Delete(leaf)
		if err != nil && !errors.Is(err, driver.ErrLayerUnknown) && !errors.Is(err, driver.ErrLayerMounted) &&
			!errors.Is(err, driver.ErrLayerHasChildren) {
			return err
		}
	}
	if _, err := s.ByDigest(d); err != nil {
		return err
	}
	return nil
}
