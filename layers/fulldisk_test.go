package layers

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
)

// TestFullDisk puts layers into a store on an 8 MiB tmpfs until it fills
// (C25's ENOSPC during save included): the failing Put gives a clear
// error naming the layer, the store is unchanged (layers.json intact, no
// dir or tar-split file of the failed layer) and usable once space is
// freed.
func TestFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	graph, run := filepath.Join(mnt, "graph"), filepath.Join(t.TempDir(), "run")

	s, err := openOverlayStore(graph, run)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 1<<20) // incompressible, so each layer takes 1 MiB
	var kept []string
	var fullErr error
	for i := range 20 {
		rand.Read(random)
		id := fmt.Sprintf("%064x", i+1)
		_, err := s.Put(PutOptions{ID: id}, bytes.NewReader(testutil.NewTar().File("f", string(random)).Bytes()))
		if err != nil {
			fullErr = err
			break
		}
		kept = append(kept, id)
	}
	if fullErr == nil {
		t.Fatal("20 MiB went into an 8 MiB tmpfs")
	}
	failed := fmt.Sprintf("%064x", len(kept)+1)
	if !errors.Is(fullErr, unix.ENOSPC) {
		t.Errorf("error %q does not match ENOSPC", fullErr)
	}
	if !bytes.Contains([]byte(fullErr.Error()), []byte(failed)) {
		t.Errorf("error %q does not name layer %s", fullErr, failed)
	}
	t.Logf("full after %d layers: %v", len(kept), fullErr)

	check := func(when string) {
		t.Helper()
		s2, err := openOverlayStore(graph, run)
		if err != nil {
			t.Fatalf("%s: reopen: %v", when, err)
		}
		list, err := s2.List()
		if err != nil || len(list) != len(kept) {
			t.Fatalf("%s: List = %d layers, %v; want %d", when, len(list), err, len(kept))
		}
		for _, p := range []string{filepath.Join(graph, "overlay", failed),
			filepath.Join(graph, "overlay-layers", failed+".tar-split.gz")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s: %s left behind", when, p)
			}
		}
		if problems, err := s2.Check(false); err != nil || len(problems) != 0 {
			t.Errorf("%s: Check = %v, %v", when, problems, err)
		}
	}
	check("when full")

	// Usable again once space is freed.
	if err := s.Delete(kept[0]); err != nil {
		t.Fatalf("Delete when full: %v", err)
	}
	kept = kept[1:]
	if _, err := s.Put(PutOptions{ID: failed}, bytes.NewReader(testutil.NewTar().File("f", "small").Bytes())); err != nil {
		t.Fatalf("Put after freeing space: %v", err)
	}
	kept = append(kept, failed)
	failed = fmt.Sprintf("%064x", 999)
	check("after freeing space")
}
