package archive_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/hostile"
)

// TestHostileBombs feeds endless gzip and zstd streams (a few KiB per GiB)
// to Put with a 64 MiB MaxDiffSize: the limit stops them within seconds
// and nothing is left.
func TestHostileBombs(t *testing.T) {
	testutil.RequireRoot(t)
	s, _ := openHostileStore(t, 64<<20)
	for name, bomb := range map[string]func() io.Reader{"gzip": hostile.GzipBomb, "zstd": hostile.ZstdBomb} {
		t.Run(name, func(t *testing.T) {
			before := shape(t, s.GraphRoot())
			start := time.Now()
			_, err := s.Put(layers.PutOptions{ID: strings.Repeat("b", 64)}, bomb())
			if !errors.Is(err, driver.ErrInvalidLayerData) || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("Put = %v, want a size-limit error", err)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("the limit took %v", d)
			}
			if d := diffShape(before, shape(t, s.GraphRoot())); len(d) != 0 {
				t.Errorf("store changed: %v", d)
			}
		})
	}
	if layers.DefaultMaxDiffSize <= 0 || layers.DefaultMaxDiffSize > 1<<40 {
		t.Errorf("DefaultMaxDiffSize = %d, want finite and at most 1 TiB", layers.DefaultMaxDiffSize)
	}
}

// TestHostileSparsePut puts a sparse file of 1 GiB apparent size (H74, in
// TestHostilePut, is 1 TiB): it stays sparse on disk, and Diff gives back
// the compact tar.
func TestHostileSparsePut(t *testing.T) {
	testutil.RequireRoot(t)
	s, _ := openHostileStore(t, 0)
	blob := testutil.NewTar().Sparse("big", 1<<30, []testutil.SparseChunk{{Offset: 1 << 29, Data: []byte("x")}}).Bytes()
	id := strings.Repeat("5", 64)
	l, err := s.Put(layers.PutOptions{ID: id}, bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	checkDiffExact(t, s, l, blob)
	n := testutil.Snapshot(t, filepath.Join(s.GraphRoot(), "overlay", id, "diff"))["big"]
	if n.Size != 1<<30 || n.Allocated > 1<<20 {
		t.Errorf("big: size %d allocated %d, want 1 GiB apparent and a few KiB", n.Size, n.Allocated)
	}
}

// peakHeap runs fn while sampling the heap every 10 ms and returns the
// largest growth over the heap in use before fn.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestHostileManyEntries streams tars of many tiny entries, generated on
// the fly, through Put and bounds the heap they cost: a million updates of
// one directory in constant memory, and distinct files at a few hundred
// bytes each (the applier remembers every path of the layer).
// STRATA_STRESS_ENTRIES raises the number of distinct files.
func TestHostileManyEntries(t *testing.T) {
	testutil.RequireRoot(t)
	s, _ := openHostileStore(t, 0)

	var putErr error
	grew := peakHeap(func() {
		_, putErr = s.Put(layers.PutOptions{ID: strings.Repeat("d", 64)}, hostile.RepeatedDir(1_000_000))
	})
	if putErr != nil {
		t.Fatalf("Put of a million dir entries: %v", putErr)
	}
	if grew > 48<<20 {
		t.Errorf("a million entries of one dir grew the heap by %d MiB", grew>>20)
	}

	files := envInt("STRATA_STRESS_ENTRIES", 40_000)
	grew = peakHeap(func() {
		_, putErr = s.Put(layers.PutOptions{ID: strings.Repeat("e", 64)}, hostile.ManyEntries(files, 100))
	})
	if putErr != nil {
		t.Fatalf("Put of %d files: %v", files, putErr)
	}
	if limit := uint64(files)*512 + 48<<20; grew > limit {
		t.Errorf("%d files grew the heap by %d MiB, want under %d MiB", files, grew>>20, limit>>20)
	}
	t.Logf("%d files: heap grew %d MiB", files, grew>>20)
}
