package als

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

const testRef = "docker.io/library/busybox:latest"

func TestRefDirC30(t *testing.T) {
	// C30: the ref's directory is its padded standard base64.
	if got, want := RefDir(testRef), "ZG9ja2VyLmlvL2xpYnJhcnkvYnVzeWJveDpsYXRlc3Q="; got != want {
		t.Fatalf("RefDir = %q, want %q", got, want)
	}
}

func TestDirLayout(t *testing.T) {
	d := NewDir(t)
	toc := digest.FromString("toc")
	dir := d.AddLayer(t, Layer{Ref: testRef, TOCDigest: toc, Files: map[string]string{"a/b": "hi"}})
	if want := filepath.Join(d.Root, RefDir(testRef), toc.String()); dir != want {
		t.Fatalf("layer dir %q, want %q", dir, want)
	}
	for _, name := range []string{"diff/a/b", "info", "blob"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFUSEStore(t *testing.T) {
	f := StartFUSE(t)
	toc := digest.FromString("toc1")
	f.AddLayer(t, Layer{Ref: testRef, TOCDigest: toc, Files: map[string]string{"etc/hello": "hello"}})
	ghost := digest.FromString("ghost")
	f.AddInfoOnly(t, testRef, ghost)
	layerDir := LayerDir(f.Mountpoint, testRef, toc)

	// Names cannot be listed, only looked up.
	for _, dir := range []string{f.Mountpoint, filepath.Join(f.Mountpoint, RefDir(testRef)), layerDir} {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 0 {
			t.Fatalf("ReadDir(%s) = %v, %v; want empty", dir, ents, err)
		}
	}
	if _, err := os.Stat(LayerDir(f.Mountpoint, "other", toc)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unknown ref: %v, want not exist", err)
	}

	// info before diff is the short form; after, the full record.
	info, err := os.ReadFile(filepath.Join(layerDir, "info"))
	if err != nil || !bytes.Equal(info, ShortInfo(toc)) {
		t.Fatalf("info before diff = %s, %v; want %s", info, err, ShortInfo(toc))
	}
	got, err := os.ReadFile(filepath.Join(layerDir, "diff", "etc", "hello"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("diff/etc/hello = %q, %v", got, err)
	}
	info, err = os.ReadFile(filepath.Join(layerDir, "info"))
	if want := StargzInfo(toc, Layer{TOCDigest: toc}.DiffIDOf()); err != nil || !bytes.Equal(info, want) {
		t.Fatalf("info after diff = %s, %v; want %s", info, err, want)
	}
	if blob, err := os.ReadFile(filepath.Join(layerDir, "blob")); err != nil || len(blob) == 0 {
		t.Fatalf("blob = %q, %v", blob, err)
	}

	// A lazy store answers info for a layer it does not have.
	ghostDir := LayerDir(f.Mountpoint, testRef, ghost)
	if _, err := os.Stat(filepath.Join(ghostDir, "info")); err != nil {
		t.Fatalf("ghost info: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ghostDir, "diff")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ghost diff: %v, want not exist", err)
	}

	// use and release are answered with ENOENT and counted.
	_, err = os.OpenFile(filepath.Join(layerDir, "use"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("create use: %v, want ENOENT", err)
	}
	if c := f.Counts(testRef, toc); c != (Counts{Uses: 1, Refs: 1}) {
		t.Fatalf("counts after use %+v", c)
	}
	if err := syscall.Rmdir(layerDir); err != syscall.ENOENT {
		t.Fatalf("rmdir: %v, want ENOENT", err)
	}
	if err := syscall.Rmdir(layerDir); err != syscall.EIO {
		t.Fatalf("second rmdir: %v, want EIO", err)
	}
	if c := f.Counts(testRef, toc); c != (Counts{Uses: 1, Releases: 1, Untracked: 1}) {
		t.Fatalf("counts after release %+v", c)
	}

	// Stopped, the store's paths are gone; started again, they are back.
	f.Stop(t)
	if _, err := os.Stat(layerDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stopped store: %v, want not exist", err)
	}
	f.Start(t)
	if _, err := os.Stat(filepath.Join(layerDir, "diff", "etc", "hello")); err != nil {
		t.Fatalf("restarted store: %v", err)
	}
}
