package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
)

// FuzzLowerChain parses arbitrary lower-layers and lower files: no panic,
// and every parent id returned is a valid id (so no path is built from a
// hostile one). The first byte picks the file. Seeds in testdata/fuzz.
func FuzzLowerChain(f *testing.F) {
	f.Add([]byte("L" + strings.Repeat("a", 64) + ":" + strings.Repeat("b", 64)))
	f.Add([]byte("ll/AAAAAAAAAAAAAAAAAAAAAAAAAA:l/BBBBBBBBBBBBBBBBBBBBBBBBBB"))
	f.Add([]byte("L../../etc:x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		home := t.TempDir()
		d := &Driver{home: home, counts: map[string]int{}}
		id := strings.Repeat("c", 64)
		if err := os.MkdirAll(filepath.Join(home, id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d.linkDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		// A short link for the "l" seeds to resolve.
		os.Symlink("../"+strings.Repeat("d", 64)+"/diff", d.shortLinkPath(strings.Repeat("A", 26)))
		file := d.lowerFile(id)
		if data[0] == 'L' {
			file = d.lowerLayersFile(id)
		}
		if err := os.WriteFile(file, data[1:], 0o600); err != nil {
			t.Fatal(err)
		}
		ids, err := d.lowerIDs(id)
		if err != nil {
			return
		}
		for _, p := range ids {
			if driver.ValidateID(p) != nil {
				t.Fatalf("lowerIDs returned invalid id %q", p)
			}
		}
	})
}
