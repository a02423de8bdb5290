package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratafs/strata/driver"
)

func mustPut(t *testing.T, s *Store, opts PutOptions) *Layer {
	t.Helper()
	l, err := s.Put(opts, sampleTar().Reader())
	if err != nil {
		t.Fatalf("Put %s: %v", opts.ID, err)
	}
	return l
}

func ids(layers []Layer) string {
	var out []string
	for _, l := range layers {
		out = append(out, l.ID)
	}
	return strings.Join(out, ",")
}

func TestLookup(t *testing.T) {
	s, _ := fakeStore(t)
	a := mustPut(t, s, PutOptions{ID: "abc111", Names: []string{"first", "first"}})
	mustPut(t, s, PutOptions{ID: "abc222", Parent: "first", Names: []string{"second"}})
	mustPut(t, s, PutOptions{ID: "def333", Parent: "abc2"})

	tests := []struct {
		ref     string
		want    string
		wantErr error
	}{
		{"abc111", "abc111", nil},
		{"first", "abc111", nil},
		{"second", "abc222", nil},
		{"abc2", "abc222", nil},
		{"d", "def333", nil},
		{"abc", "", driver.ErrAmbiguous},
		{"zzz", "", driver.ErrLayerUnknown},
		{"", "", driver.ErrInvalidArgument},
	}
	for _, tc := range tests {
		l, err := s.Get(tc.ref)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Get(%q) = %v, want %v", tc.ref, err, tc.wantErr)
			}
			continue
		}
		if err != nil || l.ID != tc.want {
			t.Errorf("Get(%q) = %v, %v; want %s", tc.ref, l, err, tc.want)
		}
	}

	if got, err := s.Get("abc111"); err != nil || len(got.Names) != 1 {
		t.Errorf("duplicate name kept: %v %v", got, err)
	}
	list, err := s.List()
	if err != nil || ids(list) != "abc111,abc222,def333" {
		t.Errorf("List = %s, %v", ids(list), err)
	}
	if list[2].Parent != "abc222" {
		t.Errorf("parent by prefix resolved to %q", list[2].Parent)
	}

	// Callers get copies.
	got, _ := s.Get("abc111")
	got.Names[0] = "changed"
	if again, _ := s.Get("first"); again == nil || again.ID != "abc111" {
		t.Error("changing a returned layer changed the store")
	}

	found, err := s.ByDigest(a.UncompressedDigest)
	if err != nil || ids(found) != "abc111,abc222,def333" {
		t.Errorf("ByDigest(diff) = %s, %v", ids(found), err)
	}
	if _, err := s.ByDigest(sha([]byte("x"))); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("ByDigest(unknown) = %v", err)
	}
	if _, err := s.ByDigest("sha256:../../etc/passwd"); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("C19 ByDigest(bad) = %v", err)
	}
}

func TestSetNames(t *testing.T) {
	s, _ := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "a", Names: []string{"x"}})
	mustPut(t, s, PutOptions{ID: "b", Names: []string{"y"}})

	if err := s.SetNames("b", []string{"y", "x"}); !errors.Is(err, driver.ErrNameInUse) {
		t.Fatalf("SetNames taking a's name = %v, want ErrNameInUse", err)
	}
	if l, _ := s.Get("b"); len(l.Names) != 1 || l.Names[0] != "y" {
		t.Errorf("failed SetNames changed names to %v", l.Names)
	}
	if err := s.SetNames("a", []string{"z"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNames("b", []string{"x", "y"}); err != nil {
		t.Fatalf("SetNames with the freed name: %v", err)
	}
	if l, err := s.Get("x"); err != nil || l.ID != "b" {
		t.Errorf("Get(x) = %v, %v", l, err)
	}
	if err := s.SetNames("a", []string{""}); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("empty name = %v", err)
	}
}

func TestReadOnlyStore(t *testing.T) {
	s, _ := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "a"})
	ro, _ := openFake(t, s.GraphRoot(), s.RunRoot(), true)
	if _, err := ro.Put(PutOptions{}, sampleTar().Reader()); !errors.Is(err, driver.ErrReadOnlyStore) {
		t.Errorf("Put = %v", err)
	}
	if err := ro.Delete("a"); !errors.Is(err, driver.ErrReadOnlyStore) {
		t.Errorf("Delete = %v", err)
	}
	if _, err := ro.Get("a"); err != nil {
		t.Errorf("Get = %v", err)
	}
}

// TestUnknownFieldsSurvive: fields another program wrote stay through a
// rewrite of layers.json.
func TestUnknownFieldsSurvive(t *testing.T) {
	graph, run := t.TempDir(), t.TempDir()
	dir := filepath.Join(graph, "overlay-layers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	record := `[{"id":"a","names":["n"],"created":"2024-01-02T03:04:05Z","compression":2,` +
		`"flags":{"future-flag":{"k":[1,2]}},"uidmap":[{"container_id":0,"host_id":100000,"size":65536}],` +
		`"big-data-digests":{"x":"sha256:00"},"future":[1,"two"]}]`
	if err := os.WriteFile(filepath.Join(dir, "layers.json"), []byte(record), 0o600); err != nil {
		t.Fatal(err)
	}
	s, drv := openFake(t, graph, run, false)
	if err := drv.Create("a", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNames("a", []string{"m"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "layers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"names":            `["m"]`,
		"future":           `[1,"two"]`,
		"big-data-digests": `{"x":"sha256:00"}`,
		"flags":            `{"future-flag":{"k":[1,2]}}`,
		"uidmap":           `[{"container_id":0,"host_id":100000,"size":65536}]`,
		"compression":      `2`,
		"created":          `"2024-01-02T03:04:05Z"`,
	}
	for key, w := range want {
		b, _ := json.Marshal(got[0][key])
		if string(b) != w {
			t.Errorf("%s = %s, want %s", key, b, w)
		}
	}
}

// TestLayersJSONDamageC25 covers C25: an empty file is an empty store that
// deletes nothing; a truncated one is an error naming the file.
func TestLayersJSONDamageC25(t *testing.T) {
	t.Run("C25 zero bytes", func(t *testing.T) {
		graph, run := t.TempDir(), t.TempDir()
		drv := newFakeDriver(filepath.Join(graph, "fake"))
		if err := drv.Create("orphan", "", nil); err != nil {
			t.Fatal(err)
		}
		writeLayersJSON(t, graph, "")
		s, _ := openFake(t, graph, run, false)
		list, err := s.List()
		if err != nil || len(list) != 0 {
			t.Fatalf("List = %v, %v; want empty", list, err)
		}
		mustPut(t, s, PutOptions{ID: "new"})
		if !drv.Exists("orphan") {
			t.Error("a directory was deleted because layers.json was empty")
		}
	})
	for _, content := range []string{`[{"id":"`, `{}`, `[null]`, `[{"id":"../x"}]`, `[{"id":"a"},{"id":"a"}]`} {
		t.Run("C25 "+content, func(t *testing.T) {
			graph, run := t.TempDir(), t.TempDir()
			writeLayersJSON(t, graph, content)
			_, err := Open(Options{GraphRoot: graph, RunRoot: run, Driver: newFakeDriver(filepath.Join(graph, "fake"))})
			if !errors.Is(err, driver.ErrStoreCorrupt) || !strings.Contains(err.Error(), "layers.json") {
				t.Fatalf("Open = %v, want ErrStoreCorrupt naming layers.json", err)
			}
			data, _ := os.ReadFile(filepath.Join(graph, "overlay-layers", "layers.json"))
			if string(data) != content {
				t.Errorf("layers.json rewritten to %q", data)
			}
		})
	}
}

func writeLayersJSON(t *testing.T, graph, content string) {
	t.Helper()
	dir := filepath.Join(graph, "overlay-layers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "layers.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIncompleteRecordsC26: a read-write open removes interrupted layers
// and their children; a read-only open hides them and deletes nothing.
func TestIncompleteRecordsC26(t *testing.T) {
	graph, run := t.TempDir(), t.TempDir()
	drv := newFakeDriver(filepath.Join(graph, "fake"))
	for _, id := range []string{"A", "C"} { // B's dir is already gone
		if err := drv.Create(id, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := drv.Create("D", "C", nil); err != nil {
		t.Fatal(err)
	}
	content := `[{"id":"A"},{"id":"B","parent":"A","flags":{"incomplete":true}},` +
		`{"id":"C","parent":"A","flags":{"incomplete":true}},{"id":"D","parent":"C"}]`
	writeLayersJSON(t, graph, content)
	splitC := filepath.Join(graph, "overlay-layers", "C.tar-split.gz")
	if err := os.WriteFile(splitC, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	ro, _ := openFake(t, graph, run, true)
	list, err := ro.List()
	if err != nil || ids(list) != "A" {
		t.Fatalf("read-only List = %s, %v; want A", ids(list), err)
	}
	if _, err := ro.Get("B"); !errors.Is(err, driver.ErrLayerUnknown) {
		t.Errorf("read-only Get(B) = %v, want ErrLayerUnknown", err)
	}
	if ro.hasChildren("A") {
		t.Error("hidden layers count as children")
	}
	if !drv.Exists("C") || !drv.Exists("D") {
		t.Error("read-only open deleted files")
	}
	if data, _ := os.ReadFile(filepath.Join(graph, "overlay-layers", "layers.json")); string(data) != content {
		t.Error("read-only open rewrote layers.json")
	}

	rw, _ := openFake(t, graph, run, false)
	list, err = rw.List()
	if err != nil || ids(list) != "A" {
		t.Fatalf("read-write List = %s, %v; want A", ids(list), err)
	}
	if drv.Exists("C") || drv.Exists("D") || !drv.Exists("A") {
		t.Error("C26: want C and D removed, A kept")
	}
	if _, err := os.Stat(splitC); !os.IsNotExist(err) {
		t.Errorf("C's tar-split still there: %v", err)
	}
	// The read-only store sees the cleaned file at its next call.
	if list, err := ro.List(); err != nil || ids(list) != "A" {
		t.Errorf("read-only List after cleanup = %s, %v", ids(list), err)
	}
}

// TestDanglingReferencesC27: chain A<-B<-C.
func TestDanglingReferencesC27(t *testing.T) {
	s, drv := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "A"})
	mustPut(t, s, PutOptions{ID: "B", Parent: "A"})
	mustPut(t, s, PutOptions{ID: "C", Parent: "B"})
	before, _ := os.ReadFile(s.layersPath())

	if err := s.Delete("A"); !errors.Is(err, driver.ErrLayerHasChildren) || !strings.Contains(err.Error(), "A") {
		t.Fatalf("C27 Delete(A) = %v, want ErrLayerHasChildren naming A", err)
	}
	if after, _ := os.ReadFile(s.layersPath()); !bytes.Equal(before, after) || !drv.Exists("A") {
		t.Fatal("C27 failed delete changed the store")
	}

	if err := os.RemoveAll(drv.dir("B")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount("C", MountOptions{}); !errors.Is(err, driver.ErrLayerUnknown) || !strings.Contains(err.Error(), " B ") {
		t.Fatalf("C27 Mount(C) = %v, want an error naming B", err)
	}
	for _, id := range []string{"C", "B"} {
		if err := s.Delete(id); err != nil {
			t.Fatalf("C27 Delete(%s): %v", id, err)
		}
	}
	if _, err := s.Mount("A", MountOptions{}); err != nil {
		t.Fatalf("C27 Mount(A) after deleting B and C: %v", err)
	}
	if err := s.Delete("A"); !errors.Is(err, driver.ErrLayerMounted) {
		t.Fatalf("Delete(mounted A) = %v, want ErrLayerMounted", err)
	}
	if list, _ := s.List(); ids(list) != "A" {
		t.Errorf("List = %s", ids(list))
	}
}

func writeMountpoints(t *testing.T, s *Store, content string) {
	t.Helper()
	if err := os.WriteFile(s.mountsPath(), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMountCountsC28 covers the single-process half of C28 and the count
// rules.
func TestMountCountsC28(t *testing.T) {
	s, drv := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "L"})
	rw, err := s.Create(CreateOptions{ID: "W", Parent: "L"})
	if err != nil {
		t.Fatal(err)
	}

	// A count that survived a reboot: L is not mounted.
	writeMountpoints(t, s, `[{"id":"L","path":"/nowhere","count":2}]`)
	if n, err := s.MountCount("L"); err != nil || n != 0 {
		t.Fatalf("C28 MountCount of stale entry = %d, %v; want 0", n, err)
	}
	path, err := s.Mount("L", MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MountCount("L"); n != 1 {
		t.Fatalf("C28 count after mount = %d, want 1", n)
	}
	if path != filepath.Join(drv.dir("L"), "merged") || drv.mountMode("L") != "ro" {
		t.Errorf("path %s mode %q: want the driver's path, read-only (image layer)", path, drv.mountMode("L"))
	}
	again, err := s.Mount("L", MountOptions{})
	if err != nil || again != path {
		t.Fatalf("second Mount = %s, %v", again, err)
	}
	if still, err := s.Unmount("L", false); err != nil || !still {
		t.Fatalf("Unmount of 2 users = %v, %v; want still mounted", still, err)
	}
	if still, err := s.Unmount("L", false); err != nil || still {
		t.Fatalf("C28 Unmount of last user = %v, %v", still, err)
	}
	if n, _ := s.MountCount("L"); n != 0 || drv.mountMode("L") != "" {
		t.Fatalf("C28 after unmount: count %d, mounted %q", n, drv.mountMode("L"))
	}
	if _, err := s.Unmount("L", false); !errors.Is(err, driver.ErrLayerNotMounted) {
		t.Errorf("Unmount of unmounted layer = %v", err)
	}

	// Writable layers mount rw unless asked; force drops every user.
	for i := 0; i < 3; i++ {
		if _, err := s.Mount(rw.ID, MountOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if drv.mountMode("W") != "rw" {
		t.Errorf("writable layer mounted %q", drv.mountMode("W"))
	}
	if still, err := s.Unmount("W", true); err != nil || still {
		t.Fatalf("forced Unmount = %v, %v", still, err)
	}
	if _, err := s.Mount("W", MountOptions{ReadOnly: true}); err != nil || drv.mountMode("W") != "ro" {
		t.Errorf("read-only mount of writable layer: %v, %q", err, drv.mountMode("W"))
	}

	writeMountpoints(t, s, `{garbage`)
	if _, err := s.Mount("L", MountOptions{}); !errors.Is(err, driver.ErrStoreCorrupt) {
		t.Errorf("C28 Mount with garbage mountpoints.json = %v, want ErrStoreCorrupt", err)
	}
	if _, err := s.MountCount("L"); !errors.Is(err, driver.ErrStoreCorrupt) {
		t.Errorf("C28 MountCount with garbage mountpoints.json = %v, want ErrStoreCorrupt", err)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	s, _ := fakeStore(t)
	mustPut(t, s, PutOptions{ID: "base"})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.Put(PutOptions{ID: id, Parent: "base"}, sampleTar().Reader()); err != nil {
					errs <- err
					return
				}
				if _, err := s.Mount(id, MountOptions{}); err != nil {
					errs <- err
					return
				}
				if _, err := s.List(); err != nil {
					errs <- err
					return
				}
				if _, err := s.Unmount(id, false); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(id); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if list, _ := s.List(); ids(list) != "base" {
		t.Errorf("List = %s", ids(list))
	}
}
