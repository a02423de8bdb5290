package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratafs/strata/testutil"
)

// FuzzApply applies arbitrary bytes as a layer tar into a fresh root next
// to a victim dir: whatever Apply returns, the victim and everything
// beside the root stay as they were. Seeds: the hostile corpus in
// testdata/hostile.
func FuzzApply(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.tar"))
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add(testutil.NewTar().Symlink("l", "../victim").File("l/x", "x").Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		root, victim := filepath.Join(base, "root"), filepath.Join(base, "victim")
		for _, d := range []string{root, filepath.Join(victim, "sub")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(victim, "hello"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := testutil.Snapshot(t, victim)
		Apply(root, bytes.NewReader(data), Options{})
		if d := before.Diff(testutil.Snapshot(t, victim)); len(d) != 0 {
			t.Fatalf("victim changed: %v", d)
		}
		entries, err := os.ReadDir(base)
		if err != nil || len(entries) != 2 {
			t.Fatalf("something appeared beside the root: %v %v", entries, err)
		}
	})
}
