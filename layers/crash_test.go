package layers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
)

// crashChildEnv makes the test binary a crash-test child: its value is
// "GRAPHROOT|RUNROOT|LOGFILE|SEED|ALSROOT".
const crashChildEnv = "STRATA_CRASH_CHILD"

// openOverlayStore opens a store with the overlay driver using the given
// Additional Layer Store entries; the driver is not cleaned up (that would
// unmount what other processes mounted).
func openOverlayStore(graph, run string, alsStores ...string) (*Store, error) {
	drv, err := overlay.New(filepath.Join(graph, "overlay"), overlay.Options{AdditionalLayerStores: alsStores})
	if err != nil {
		return nil, err
	}
	return Open(Options{GraphRoot: graph, RunRoot: run, Driver: drv})
}

// layerContent is what the one file of a Put layer holds.
func layerContent(id string) string { return "data of " + id }

// opLog appends one line per operation to a file shared with the parent.
type opLog struct{ f *os.File }

func (l opLog) log(format string, args ...any) {
	fmt.Fprintf(l.f, format+"\n", args...)
}

// randomOps runs ops operations (0: for ever) chosen at random on s:
// Put, Create, Delete, SetNames, Mount and Unmount, logging "ok OP ID"
// after each success and "begin delete ID" before a delete.
func randomOps(s *Store, rng *rand.Rand, log opLog, ops int) error {
	return randomOpsWith(s, rng, log, ops, opsConfig{})
}

// opsConfig adds to what randomOps does.
type opsConfig struct {
	// withALS also adopts layers of the crash test's Additional Layer
	// Store (one operation in six; see putALSOp), which s's driver must
	// be configured with.
	withALS bool
	// maxLayers > 0: above that many layers, every other operation
	// deletes a layer without children, so that a store killed a thousand
	// times stays small enough to check after each kill.
	maxLayers int
}

// randomOpsWith is randomOps with the additions of cfg.
func randomOpsWith(s *Store, rng *rand.Rand, log opLog, ops int, cfg opsConfig) error {
	choices := 10
	if cfg.withALS {
		choices = 12
	}
	for i := 0; ops == 0 || i < ops; i++ {
		list, err := s.List()
		if err != nil {
			return err
		}
		pick := func() *Layer {
			if len(list) == 0 {
				return nil
			}
			return &list[rng.IntN(len(list))]
		}
		if cfg.maxLayers > 0 && len(list) > cfg.maxLayers && rng.IntN(2) == 0 {
			deleteLeafOp(s, rng, log, list)
			continue
		}
		switch op := rng.IntN(choices); {
		case op < 3 || len(list) < 3:
			id := fmt.Sprintf("%016x%048x", rng.Uint64(), 0)
			parent := ""
			if p := pick(); p != nil && p.ReadOnly && rng.IntN(2) == 0 {
				parent = p.ID
			}
			tar := testutil.NewTar().File("f", layerContent(id)).File("pad", strings.Repeat("x", rng.IntN(64<<10)))
			if _, err := s.Put(PutOptions{ID: id, Parent: parent}, bytes.NewReader(tar.Gzip())); err == nil {
				log.log("ok put %s", id)
			}
		case op == 3:
			id := fmt.Sprintf("%016x%048x", rng.Uint64(), 1)
			parent := ""
			if p := pick(); p != nil && p.ReadOnly {
				parent = p.ID
			}
			if _, err := s.Create(CreateOptions{ID: id, Parent: parent}); err == nil {
				log.log("ok create %s", id)
			}
		case op == 4:
			if p := pick(); p != nil {
				log.log("begin delete %s", p.ID)
				if err := s.Delete(p.ID); err == nil {
					log.log("ok delete %s", p.ID)
				}
			}
		case op == 5:
			if p := pick(); p != nil {
				name := fmt.Sprintf("n%d", rng.IntN(1000))
				if err := s.SetNames(p.ID, []string{name}); err == nil {
					log.log("ok names %s %s", p.ID, name)
				}
			}
		case op < 8:
			if p := pick(); p != nil {
				if _, err := s.Mount(p.ID, MountOptions{}); err == nil {
					log.log("ok mount %s", p.ID)
				}
			}
		case op >= 10:
			putALSOp(s, rng, log, pick)
		default:
			if p := pick(); p != nil {
				if _, err := s.Unmount(p.ID, false); err == nil {
					log.log("ok unmount %s", p.ID)
				}
			}
		}
	}
	return nil
}

// deleteLeafOp deletes a random layer of list that no layer of list has as
// parent, logging like the Delete of randomOps.
func deleteLeafOp(s *Store, rng *rand.Rand, log opLog, list []Layer) {
	parents := map[string]bool{}
	for _, l := range list {
		parents[l.Parent] = true
	}
	var leaves []string
	for _, l := range list {
		if !parents[l.ID] {
			leaves = append(leaves, l.ID)
		}
	}
	if len(leaves) == 0 {
		return
	}
	id := leaves[rng.IntN(len(leaves))]
	log.log("begin delete %s", id)
	if err := s.Delete(id); err == nil {
		log.log("ok delete %s", id)
	}
}

// crashMaxLayers bounds the crash test's store; see opsConfig.maxLayers.
const crashMaxLayers = 200

// TestCrashChild is the process the crash test kills; it does nothing
// unless started by TestCrash.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("run by TestCrash")
	}
	parts := strings.Split(spec, "|")
	seed, _ := strconv.ParseUint(parts[3], 10, 64)
	f, err := os.OpenFile(parts[2], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openOverlayStore(parts[0], parts[1], crashALSEntry(parts[4]))
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(randomOpsWith(s, rand.New(rand.NewPCG(seed, 1)), opLog{f}, 0,
		opsConfig{withALS: true, maxLayers: crashMaxLayers}))
}

// TestCrash kills a child doing store operations (PutAdditionalLayer from
// a plain-directory ALS among them) with SIGKILL at random moments
// (STRATA_STRESS_KILLS times, 100 by default) and checks the store after
// every kill: layers.json parses, a read-write open leaves no incomplete
// layer, every layer the log says was made exists with its content (an
// ALS layer: its info's digests, a diff symlink into the ALS, and its file
// visible through a read-only mount), no driver dir, short link or
// tar-split file is left without a record, mount counts agree with the
// mounts, and the ALS itself is unchanged.
func TestCrash(t *testing.T) {
	testutil.RequireRoot(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	kills := envKills(100)
	graph, run := testutil.TempStore(t)
	logPath := filepath.Join(t.TempDir(), "ops.log")
	alsRoot := newCrashALS(t)
	alsBefore := testutil.Snapshot(t, alsRoot)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var alsSeen map[string]int // ALS layers checked after the previous kill
	leftUse := map[string]bool{}

	for i := range kills {
		seed := rng.Uint64()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d|%s", crashChildEnv, graph, run, logPath, seed, alsRoot))
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: child ended by itself (%v): %s", i, err, stderr.String())
		}
		alsSeen = verifyAfterCrash(t, i, graph, run, logPath, alsRoot, rng, alsSeen)
		diffs, uses := alsTreeChanges(t, alsBefore, alsRoot)
		for _, d := range diffs {
			t.Errorf("kill %d: the ALS changed: %s", i, d)
		}
		for _, p := range uses {
			if !leftUse[p] {
				leftUse[p] = true
				t.Logf("kill %d: the kill left the use notification file %s in the ALS", i, p)
			}
		}
		if t.Failed() {
			t.Fatalf("kill %d (child seed %d) left the store inconsistent", i, seed)
		}
	}
	made, alsMade := committedLayers(t, logPath)
	t.Logf("%d kills; at the end %d put/created and %d ALS layers logged as made and kept", kills, len(made), len(alsMade))
	if len(alsMade) == 0 && kills >= 100 {
		t.Errorf("no ALS layer was made in %d kills", kills)
	}
}

func envKills(def int) int {
	if v, err := strconv.Atoi(os.Getenv("STRATA_STRESS_KILLS")); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return 10
	}
	return def
}

// committedLayers reads the op log: the layers made by Put or Create and
// the ALS layers made (id -> ALS layer number), not (even partly) deleted
// since.
func committedLayers(t *testing.T, logPath string) (made map[string]bool, alsMade map[string]int) {
	t.Helper()
	made, alsMade = map[string]bool{}, map[string]int{}
	f, err := os.Open(logPath)
	if err != nil {
		if os.IsNotExist(err) {
			return made, alsMade
		}
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue // a line cut by the kill
		}
		switch fields[0] + " " + fields[1] {
		case "ok put", "ok create":
			made[fields[2]] = true
		case "ok als":
			if len(fields) < 4 {
				continue
			}
			n, err := strconv.Atoi(fields[3])
			if err != nil || n < 0 || n >= crashALSCount {
				continue // a line cut by the kill
			}
			alsMade[fields[2]] = n
		case "begin delete":
			delete(made, fields[2])
			delete(alsMade, fields[2])
		}
	}
	return made, alsMade
}

// verifyAfterCrash checks the store after kill and returns the ALS layers
// the log says are made. alsBefore are those of the previous kill: some of
// the others, and two older ones, are mounted (see alsMountSample).
func verifyAfterCrash(t *testing.T, kill int, graph, run, logPath, alsRoot string, rng *rand.Rand, alsBefore map[string]int) map[string]int {
	t.Helper()
	jsonPath := filepath.Join(graph, "overlay-layers", "layers.json")
	if data, err := os.ReadFile(jsonPath); err == nil && len(data) > 0 {
		var records []map[string]any
		if err := json.Unmarshal(data, &records); err != nil {
			t.Fatalf("kill %d: layers.json does not parse: %v", kill, err)
		}
	}

	s, err := openOverlayStore(graph, run, crashALSEntry(alsRoot))
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", kill, err)
	}
	defer s.Close()
	var records []map[string]any
	data, _ := os.ReadFile(jsonPath)
	if len(data) == 0 {
		data = []byte("[]")
	}
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatalf("kill %d: layers.json after reopen: %v", kill, err)
	}
	for _, r := range records {
		if flags, _ := r["flags"].(map[string]any); flags["incomplete"] == true {
			t.Errorf("kill %d: layer %v still flagged incomplete after a read-write open", kill, r["id"])
		}
	}

	made, alsMade := committedLayers(t, logPath)
	for id := range made {
		l, err := s.Get(id)
		if err != nil {
			t.Errorf("kill %d: committed layer %s: %v", kill, id, err)
			continue
		}
		if !l.ReadOnly {
			continue
		}
		diff, err := s.Driver().DiffPath(id)
		if err != nil {
			t.Errorf("kill %d: layer %s: %v", kill, id, err)
			continue
		}
		if got, err := os.ReadFile(filepath.Join(diff, "f")); err != nil || string(got) != layerContent(id) {
			t.Errorf("kill %d: layer %s content %q, %v", kill, id, got, err)
		}
	}

	problems, err := s.Check(false)
	if err != nil {
		t.Errorf("kill %d: Check: %v", kill, err)
	}
	leaked := 0
	for _, p := range problems {
		if p.AtOpen { // the reopen removed the child's half-made layer
			continue
		}
		// The child died between mounting and counting (leaked), or
		// between unmounting and counting (stale: every reader already
		// sees 0 since the layer is not mounted).
		if p.Kind == "leaked-mount" || p.Kind == "stale-mount" {
			leaked++
			continue
		}
		t.Errorf("kill %d: after reopen: %s", kill, p)
	}
	if leaked > 0 {
		if _, err := s.Check(true); err != nil {
			t.Errorf("kill %d: Check --repair: %v", kill, err)
		}
	}
	fresh := map[string]bool{}
	for id := range alsMade {
		if _, ok := alsBefore[id]; !ok {
			fresh[id] = true
		}
	}
	verifyALSLayers(t, kill, s, graph, alsRoot, alsMade, alsMountSample(rng, alsMade, fresh))
	checkMountCounts(t, s)
	return alsMade
}

// checkMountCounts asserts that a layer has a mount count exactly when it
// is mounted. MountCount reports 0 for a layer that is not mounted (a count
// left without its mount is stale), so only mounted layers are asked: each
// MountCount reads mountpoints.json, and the crash test's store grows to
// hundreds of layers.
func checkMountCounts(t *testing.T, s *Store) {
	t.Helper()
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		mounted, err := s.Driver().Mounted(l.ID)
		if err != nil {
			t.Errorf("Mounted %s: %v", l.ID, err)
			continue
		}
		if !mounted {
			continue
		}
		count, err := s.MountCount(l.ID)
		if err != nil {
			t.Errorf("MountCount %s: %v", l.ID, err)
			continue
		}
		if count == 0 {
			t.Errorf("layer %s: mounted but its mount count is 0", l.ID)
		}
	}
}
