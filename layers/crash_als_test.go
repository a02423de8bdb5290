package layers

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

// crashALSRef is the image reference the crash test's ALS layers are
// offered for.
const crashALSRef = "registry.example/crash/als:1"

// crashALSCount is how many layers the crash test's ALS offers.
const crashALSCount = 4

// crashALSFile is the one file of every crash-test ALS layer.
const crashALSFile = "als/f"

// crashALSLayer is ALS layer n of the crash test. Even layers carry a full
// info record (both digests and sizes, uid/gid sets); odd ones carry only
// what stargz-store writes for a resolved layer.
func crashALSLayer(n int) als.Layer {
	toc := digest.FromString(fmt.Sprintf("crash toc %d", n))
	l := als.Layer{
		Ref:       crashALSRef,
		TOCDigest: toc,
		Files:     map[string]string{crashALSFile: alsLayerContent(n)},
	}
	if n%2 == 0 {
		info, err := json.Marshal(map[string]any{
			"id":                     "ignored-" + fmt.Sprint(n),
			"compressed-diff-digest": digest.FromString(fmt.Sprintf("crash blob %d", n)),
			"compressed-size":        1000 + n,
			"diff-digest":            digest.FromString(fmt.Sprintf("crash diff %d", n)),
			"diff-size":              2000 + n,
			"toc-digest":             toc,
			"compression":            int(Gzip),
			"uidset":                 []uint32{0, uint32(100 + n)},
			"gidset":                 []uint32{0},
			"flags":                  map[string]any{"incomplete": true, "expected-layer-diffid": digest.FromString(fmt.Sprintf("crash diff %d", n))},
		})
		if err != nil {
			panic(err)
		}
		l.Info = info
	}
	return l
}

// alsLayerContent is what crashALSFile of ALS layer n holds.
func alsLayerContent(n int) string { return fmt.Sprintf("als layer %d", n) }

// newCrashALS makes the crash test's plain-directory ALS (a FUSE store
// would outlive a killed child) and returns its root.
func newCrashALS(t *testing.T) string {
	t.Helper()
	store := als.NewDir(t)
	for n := range crashALSCount {
		store.AddLayer(t, crashALSLayer(n))
	}
	return store.Root
}

// crashALSEntry is the driver's AdditionalLayerStores entry for root.
func crashALSEntry(root string) string { return root + ":ref" }

// putALSOp adopts a random ALS layer on top of a random read-only layer
// (or none) and logs "ok als ID N" once PutAs returned.
//
// The chain below may already hold the same ALS layer (an image can repeat
// a layer): the driver drops the repeated lower dir, so it still mounts.
func putALSOp(s *Store, rng *rand.Rand, log opLog, pick func() *Layer) {
	id := fmt.Sprintf("%016x%048x", rng.Uint64(), 2)
	parent := ""
	if p := pick(); p != nil && p.ReadOnly && rng.IntN(2) == 0 {
		parent = p.ID
	}
	n := rng.IntN(crashALSCount)
	a, err := s.LookupAdditionalLayer(crashALSLayer(n).TOCDigest, crashALSRef)
	if err != nil {
		return
	}
	defer a.Release()
	if _, err := a.PutAs(id, parent, nil); err == nil {
		log.log("ok als %s %d", id, n)
	}
}

// verifyALSLayers checks the committed ALS layers (id -> ALS layer number)
// after a kill: each record holds its info's digests, sizes, compression,
// id sets and expected diff ID; its diff is a symlink to the ALS layer's
// diff and its additionallayer file names the ALS layer dir. The layers in
// mountCheck are also mounted (read-only, as every read-only layer is) and
// their file read through the mount.
func verifyALSLayers(t *testing.T, kill int, s *Store, graph, alsRoot string, made map[string]int, mountCheck map[string]bool) {
	t.Helper()
	home := filepath.Join(graph, "overlay")
	for id, n := range made {
		spec := crashALSLayer(n)
		l, err := s.Get(id)
		if err != nil {
			t.Errorf("kill %d: committed ALS layer %s: %v", kill, id, err)
			continue
		}
		checkALSRecord(t, kill, l, spec)
		layerDir := als.LayerDir(alsRoot, crashALSRef, spec.TOCDigest)
		if target, err := os.Readlink(filepath.Join(home, id, "diff")); err != nil || target != filepath.Join(layerDir, "diff") {
			t.Errorf("kill %d: ALS layer %s: diff links to %q (%v), want %s", kill, id, target, err, filepath.Join(layerDir, "diff"))
		}
		if b, err := os.ReadFile(filepath.Join(home, id, "additionallayer")); err != nil || string(b) != layerDir {
			t.Errorf("kill %d: ALS layer %s: additionallayer %q (%v), want %s", kill, id, b, err, layerDir)
		}
		if !mountCheck[id] {
			continue
		}
		dir, err := s.Mount(id, MountOptions{ReadOnly: true})
		if err != nil {
			t.Errorf("kill %d: mount ALS layer %s: %v", kill, id, err)
			continue
		}
		if got, err := os.ReadFile(filepath.Join(dir, crashALSFile)); err != nil || string(got) != alsLayerContent(n) {
			t.Errorf("kill %d: ALS layer %s: %s through the mount: %q, %v", kill, id, crashALSFile, got, err)
		}
		if _, err := s.Unmount(id, false); err != nil {
			t.Errorf("kill %d: unmount ALS layer %s: %v", kill, id, err)
		}
	}
}

// checkALSRecord compares what the store adopted from spec's info.
func checkALSRecord(t *testing.T, kill int, l *Layer, spec als.Layer) {
	t.Helper()
	var info alsInfo
	raw := spec.Info
	if raw == nil {
		raw = als.StargzInfo(spec.TOCDigest, spec.DiffIDOf())
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %d %s %d %s %d %v %v %v ro=%v inc=%v",
		l.CompressedDigest, l.CompressedSize, l.UncompressedDigest, l.UncompressedSize,
		l.TOCDigest, l.CompressionType, l.UIDs, l.GIDs, l.Flags[flagExpectedDiffID], l.ReadOnly, l.incomplete())
	want := fmt.Sprintf("%s %d %s %d %s %d %v %v %v ro=%v inc=%v",
		info.CompressedDigest, info.CompressedSize, info.UncompressedDigest, info.UncompressedSize,
		info.TOCDigest, info.CompressionType, nilIfEmpty(info.UIDs), nilIfEmpty(info.GIDs),
		info.Flags.ExpectedDiffID.String(), true, false)
	if got != want {
		t.Errorf("kill %d: ALS layer %s record:\n got %s\nwant %s", kill, l.ID, got, want)
	}
}

func nilIfEmpty(s []uint32) []uint32 {
	if len(s) == 0 {
		return nil
	}
	return s
}

// alsMountSample picks the ALS layers to mount after a kill: up to four of
// those the last child made and two older ones, so that the cost of a
// kill does not grow with what the child managed to do.
func alsMountSample(rng *rand.Rand, made map[string]int, fresh map[string]bool) map[string]bool {
	var newer, older []string
	for id := range made {
		if fresh[id] {
			newer = append(newer, id)
		} else {
			older = append(older, id)
		}
	}
	out := map[string]bool{}
	for _, ids := range []struct {
		list []string
		n    int
	}{{newer, 4}, {older, 2}} {
		slices.Sort(ids.list) // map order is not the seed's
		rng.Shuffle(len(ids.list), func(i, j int) { ids.list[i], ids.list[j] = ids.list[j], ids.list[i] })
		for _, id := range ids.list[:min(ids.n, len(ids.list))] {
			out[id] = true
		}
	}
	return out
}

// alsTreeChanges compares the ALS root with its snapshot from before the
// run. Directory mtimes are not compared: the use notification creates and
// removes a file in a layer dir of a store that does not count. An empty
// `use` file directly in a layer dir is reported apart (leftUse): a kill
// between that create and remove leaves it.
func alsTreeChanges(t *testing.T, before testutil.Tree, root string) (diffs, leftUse []string) {
	t.Helper()
	after := testutil.Snapshot(t, root)
	for n := range crashALSCount {
		p := filepath.ToSlash(filepath.Join(als.RefDir(crashALSRef), crashALSLayer(n).TOCDigest.String(), "use"))
		if node, ok := after[p]; ok && node.Type == "file" && node.Size == 0 {
			leftUse = append(leftUse, p)
			delete(after, p)
		}
	}
	return stripDirTimes(before).Diff(stripDirTimes(after)), leftUse
}

func stripDirTimes(tree testutil.Tree) testutil.Tree {
	out := testutil.Tree{}
	for p, n := range tree {
		if n.Type == "dir" {
			n.MTime = time.Time{}
		}
		out[p] = n
	}
	return out
}
