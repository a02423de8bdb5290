package layers

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata/testutil"
)

// concurrentChildEnv makes the test binary a concurrency-test child:
// "GRAPHROOT|RUNROOT|LOGFILE|SEED".
const concurrentChildEnv = "STRATA_CONCURRENT_CHILD"

const (
	concurrentProcs      = 4
	concurrentGoroutines = 4
	concurrentOps        = 200 // per process, spread over its goroutines
)

// TestConcurrentChild runs concurrentOps random operations in
// concurrentGoroutines goroutines; only TestConcurrency starts it.
func TestConcurrentChild(t *testing.T) {
	spec := os.Getenv(concurrentChildEnv)
	if spec == "" {
		t.Skip("run by TestConcurrency")
	}
	parts := strings.Split(spec, "|")
	seed, _ := strconv.ParseUint(parts[3], 10, 64)
	s, err := openOverlayStore(parts[0], parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range concurrentGoroutines {
		f, err := os.OpenFile(fmt.Sprintf("%s.%d", parts[2], g), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			if err := randomOps(s, rng, opLog{f}, concurrentOps/concurrentGoroutines); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestConcurrency (C29) runs 4 processes × 200 mixed operations, each
// process in 4 goroutines, on one store under a deadline (goroutines of
// every child are dumped when it passes). Then the store must match the
// logs exactly: every layer made and not deleted exists, every deleted one
// is gone, no other layer exists, and each mount count equals the mounts
// minus the unmounts that succeeded.
func TestConcurrency(t *testing.T) {
	testutil.RequireRoot(t)
	if os.Getenv(concurrentChildEnv) != "" {
		t.Skip("child")
	}
	graph, run := testutil.TempStore(t)
	if _, err := openOverlayStore(graph, run); err != nil { // layout made once
		t.Fatal(err)
	}
	logDir := t.TempDir()
	deadline := 4 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d) < deadline+30*time.Second {
		deadline = time.Until(d) - 30*time.Second
	}

	var cmds []*exec.Cmd
	outs := make([]*bytes.Buffer, concurrentProcs)
	for p := range concurrentProcs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d", concurrentChildEnv, graph, run,
			filepath.Join(logDir, fmt.Sprintf("p%d", p)), time.Now().UnixNano()+int64(p)))
		outs[p] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[p], outs[p]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	timer := time.AfterFunc(deadline, func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGQUIT) // the Go runtime dumps every goroutine
		}
	})
	for p, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", p, err, outs[p])
		}
	}
	if !timer.Stop() {
		t.Fatalf("deadlock: no end within %v (goroutine dumps above)", deadline)
	}
	if t.Failed() {
		return
	}

	made, deleted, mounts := map[string]bool{}, map[string]bool{}, map[string]int{}
	files, _ := filepath.Glob(filepath.Join(logDir, "p*"))
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch fields[0] + " " + fields[1] {
			case "ok put", "ok create":
				made[fields[2]] = true
			case "ok delete":
				deleted[fields[2]] = true
			case "ok mount":
				mounts[fields[2]]++
			case "ok unmount":
				mounts[fields[2]]--
			}
		}
		f.Close()
	}

	s, err := openOverlayStore(graph, run)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	inStore := map[string]bool{}
	for _, l := range list {
		inStore[l.ID] = true
		if !made[l.ID] {
			t.Errorf("layer %s in the store but in no log", l.ID)
		}
	}
	for id := range made {
		if deleted[id] == inStore[id] {
			t.Errorf("layer %s: deleted=%v but in store=%v", id, deleted[id], inStore[id])
		}
	}
	for id := range inStore {
		count, err := s.MountCount(id)
		if err != nil || count != mounts[id] {
			t.Errorf("layer %s: mount count %d, %v; the logs say %d", id, count, err, mounts[id])
		}
	}
	checkMountCounts(t, s)
	if problems, err := s.Check(false); err != nil || len(problems) != 0 {
		t.Errorf("Check: %v, %v", problems, err)
	}
	t.Logf("%d layers made, %d deleted, %d in the store", len(made), len(deleted), len(list))
}
