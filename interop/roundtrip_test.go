package interop

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/testutil"
)

// TestDiffRoundTrip imports a layer plain, gzip and zstd and checks Diff
// gives back the uncompressed tar byte for byte, also for tars whose end
// strata must not normalise (C13 trailing zeros, GNU headers).
func TestDiffRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	layer := baseLayer().Bytes()
	padded := append(append([]byte(nil), layer...), make([]byte, 8192)...)
	cases := []struct {
		name      string
		tar, blob []byte
	}{
		{"plain", layer, layer},
		{"gzip", layer, testutil.Gzip(layer)},
		{"zstd", layer, testutil.Zstd(layer)},
		{"C13-trailing-zeros", padded, padded},
		{"top-gzip", topLayer().Bytes(), topLayer().Gzip()},
	}
	graph, run := testutil.TempStore(t)
	s := openStore(t, graph, run)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := s.Put(layers.PutOptions{}, bytes.NewReader(c.blob))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			source, err := s.Diff(l.ID, &out)
			if err != nil {
				t.Fatal(err)
			}
			if source != layers.DiffFromTarSplit || !bytes.Equal(out.Bytes(), c.tar) {
				t.Errorf("diff from %s: %d bytes %s, want %d bytes %s", source,
					out.Len(), sha256Hex(out.Bytes()), len(c.tar), sha256Hex(c.tar))
			}
			if string(l.UncompressedDigest) != sha256Hex(out.Bytes()) {
				t.Errorf("diff digest %s, recorded %s", sha256Hex(out.Bytes()), l.UncompressedDigest)
			}
		})
	}
}

// TestAlternatingWriters keeps one strata store open while the peer writes
// the same store: each sees the other's changes without reopening, and a
// field strata does not know survives strata's rewrites of layers.json.
func TestAlternatingWriters(t *testing.T) {
	graph, run := testutil.TempStore(t)
	cs := needPeer(t, graph, run)
	s := openStore(t, graph, run)
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "l.tar")
	if err := os.WriteFile(tarPath, testutil.NewTar().File("a", "a").Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	cs.sh(t, "CS import-layer -n from-peer -f '"+tarPath+"' >/dev/null", nil)
	if _, err := s.Get("from-peer"); err != nil {
		t.Fatalf("strata does not see the peer's layer: %v", err)
	}

	// The peer's next write changes the last-write token, so strata reloads.
	cs.sh(t, "CS add-names -n peer-alias from-peer >/dev/null", nil)

	// A field from a future containers/storage, put in by hand (the peer
	// itself drops fields it does not know, so no peer write may follow).
	// A second store object loads the edited file; strata's next save
	// must keep the field.
	layersJSON := filepath.Join(graph, "overlay-layers", "layers.json")
	var records []map[string]any
	data, err := os.ReadFile(layersJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatal(err)
	}
	records[0]["x-future-field"] = map[string]any{"kept": true}
	data, _ = json.Marshal(records)
	if err := os.WriteFile(layersJSON, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, graph, run)

	l, err := s2.Put(layers.PutOptions{Parent: "from-peer", Names: []string{"from-strata"}},
		testutil.NewTar().File("b", "b").Reader())
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("peer-alias")
	if err != nil || !slices.Contains(got.Names, "from-peer") {
		t.Fatalf("strata does not see the peer's new name: %v", err)
	}
	seen := cs.layers(t)
	if len(seen) != 2 || seen[1].ID != l.ID || seen[1].Parent != seen[0].ID {
		t.Fatalf("peer does not see strata's layer on top of its own: %+v", seen)
	}
	data, err = os.ReadFile(layersJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"x-future-field":{"kept":true}`) {
		t.Errorf("unknown field lost in strata's rewrite:\n%s", data)
	}

	cs.sh(t, "CS delete-layer "+l.ID+" >/dev/null", nil)
	if _, err := s.Get(l.ID); err == nil {
		t.Errorf("strata still sees layer %s the peer deleted", l.ID)
	}
}
