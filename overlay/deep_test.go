package overlay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// chainID is the id of the i-th layer of a test chain, 64 hex like an
// image layer's.
func chainID(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("layer %d", i)))
	return hex.EncodeToString(sum[:])
}

// longHome returns a driver home below a graph root of about 180 chars.
func longHome(t testing.TB) string {
	t.Helper()
	testutil.RequireRoot(t)
	graph, _ := testutil.TempStore(t)
	if pad := 180 - len(graph) - 1; pad > 0 {
		graph = filepath.Join(graph, strings.Repeat("g", pad))
	}
	return filepath.Join(graph, "overlay")
}

// buildChain makes n layers, each on top of the one before, layer i
// holding file f<i>.
func buildChain(t testing.TB, d *Driver, n int) {
	t.Helper()
	parent := ""
	for i := range n {
		id := chainID(i)
		mustCreate(t, d, id, parent)
		writeDiffFile(t, d, id, fmt.Sprintf("f%d", i), id)
		parent = id
	}
}

// checkStack asserts that the mount of a depth-n chain shows every layer's
// file and every requested option, and has the expected number of lowers.
func checkStack(t *testing.T, d *Driver, p string, n int, ro bool) {
	t.Helper()
	entries, err := os.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("merged has %d entries, want %d", len(entries), n)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(p, fmt.Sprintf("f%d", i)))
		if err != nil || string(b) != chainID(i) {
			t.Fatalf("f%d: %q, %v", i, b, err)
		}
	}

	m, ok := findMount(t, p)
	if !ok {
		t.Fatalf("%s not in mountinfo", p)
	}
	for _, o := range []string{"nodev", "nosuid"} {
		if !hasOpt(m.mountOpts, o) {
			t.Errorf("mount options %v lack %s", m.mountOpts, o)
		}
	}
	if ro && !hasOpt(m.mountOpts, "ro") {
		t.Errorf("read-only mount options %v lack ro", m.mountOpts)
	}
	if !ro && !hasOpt(m.superOpts, "volatile") && !hasOpt(m.superOpts, "fsync=volatile") {
		t.Errorf("super options lack volatile")
	}
	if hasOpt(m.superOpts, "metacopy=on") {
		t.Errorf("super options have metacopy=on, which the driver must not add")
	}

	wantLowers := n - 1
	if ro {
		wantLowers = n
	}
	wantLowers = max(wantLowers, 1)
	if ro {
		wantLowers = max(wantLowers, 2)
	}
	gotLowers := countOpt(m.superOpts, "lowerdir+")
	for _, o := range m.superOpts {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			gotLowers += strings.Count(v, ":") + 1
		}
	}
	if gotLowers != wantLowers {
		t.Errorf("mount has %d lowers, want %d", gotLowers, wantLowers)
	}
}

// C20: deep stacks with a long graph root.
func TestDeepStacksC20(t *testing.T) {
	home := longHome(t)
	d := openTestDriver(t, home, Options{MountOptions: []string{"nodev"}})
	buildChain(t, d, 501)
	opts := []string{"nosuid"}

	for _, n := range []int{1, 2, 128, 129, 499, 500} {
		for _, ro := range []bool{true, false} {
			t.Run(fmt.Sprintf("C20/%d/ro=%v", n, ro), func(t *testing.T) {
				id := chainID(n - 1)
				mo := driver.MountOpts{ReadOnly: ro, Options: opts}
				if !ro {
					mo.Options = append(mo.Options, "volatile")
				}
				p, err := d.Mount(id, mo)
				if err != nil {
					t.Fatalf("Mount of a %d-layer stack: %v", n, err)
				}
				defer func() {
					if err := d.Unmount(id); err != nil {
						t.Error(err)
					}
				}()
				checkStack(t, d, p, n, ro)
			})
		}
	}

	t.Run("C20/501", func(t *testing.T) {
		id := chainID(500)
		_, err := d.Mount(id, driver.MountOpts{ReadOnly: true})
		if !errors.Is(err, driver.ErrTooManyLayers) || !strings.Contains(err.Error(), id) {
			t.Fatalf("Mount of 501 layers = %v, want ErrTooManyLayers naming %s", err, id)
		}
		if _, ok := findMount(t, d.mergedDir(id)); ok {
			t.Error("501-layer stack got mounted")
		}
	})

	// The classic mount(2) takes one page of options: 129 layers fit
	// with the short relative links, 500 do not and say so.
	classic := openTestDriver(t, home, Options{MountOptions: []string{"nodev"}, classicMount: true})
	for _, ro := range []bool{true, false} {
		t.Run(fmt.Sprintf("C20/mount2/129/ro=%v", ro), func(t *testing.T) {
			id := chainID(128)
			mo := driver.MountOpts{ReadOnly: ro, Options: opts}
			if !ro {
				mo.Options = append(mo.Options, "volatile")
			}
			p, err := classic.Mount(id, mo)
			if err != nil {
				t.Fatalf("mount(2) of 129 layers: %v", err)
			}
			defer func() {
				if err := classic.Unmount(id); err != nil {
					t.Error(err)
				}
			}()
			checkStack(t, classic, p, 129, ro)
		})
	}
	t.Run("C20/mount2/500", func(t *testing.T) {
		_, err := classic.Mount(chainID(499), driver.MountOpts{ReadOnly: true})
		if !errors.Is(err, driver.ErrTooManyLayers) {
			t.Fatalf("mount(2) of 500 layers = %v, want ErrTooManyLayers", err)
		}
	})
}

// BenchmarkMount500 mounts and unmounts a 500-layer stack.
func BenchmarkMount500(b *testing.B) {
	home := longHome(b)
	d := openTestDriver(b, home, Options{})
	buildChain(b, d, 500)
	top := chainID(499)
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Mount(top, driver.MountOpts{ReadOnly: true}); err != nil {
			b.Fatal(err)
		}
		if err := d.Unmount(top); err != nil {
			b.Fatal(err)
		}
	}
}
