package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
)

// TestReadOnlyRoot: the reading verbs work on a root bind-mounted
// read-only; a changing verb fails saying the store is read-only.
func TestReadOnlyRoot(t *testing.T) {
	c := newCLI(t)
	tarPath := filepath.Join(t.TempDir(), "base.tar")
	if err := os.WriteFile(tarPath, testutil.NewTar().Dir("etc/").File("etc/passwd", "root\n").Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("import", "--name", "base", tarPath)

	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(c.root, ro, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ro, unix.MNT_DETACH) })
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}

	rc := &cli{t: t, root: ro, runRoot: filepath.Join(t.TempDir(), "run")}
	for _, verb := range [][]string{{"layers"}, {"layer", "base"}, {"diff", "base"}, {"status"}, {"check"}} {
		rc.ok(verb...)
	}
	r := rc.run(nil, "create", "--parent", "base")
	if r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Errorf("create on a read-only root: exit %d, stderr %q; want a read-only error", r.code, r.stderr)
	}
}
