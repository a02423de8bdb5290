package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckEmptiedLayersJSON: "strata check" and "check --repair" on a
// store whose layers.json was emptied by hand exit 1, say to restore it,
// and delete no layer dir.
func TestCheckEmptiedLayersJSON(t *testing.T) {
	c := newCLI(t)
	l1, l2, l3 := c.importChain()
	layersJSON := filepath.Join(c.root, "overlay-layers", "layers.json")
	if err := os.WriteFile(layersJSON, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check"}, {"check", "--repair"}} {
		r := c.run(nil, args...)
		if r.code != 1 || !strings.Contains(r.stdout,
			"layers.json has no records but 3 layer directories exist; not deleting them: restore layers.json") {
			t.Errorf("strata %s: exit %d\nstdout %s\nstderr %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	for _, id := range []string{l1, l2, l3} {
		if _, err := os.Stat(filepath.Join(c.root, "overlay", id, "diff")); err != nil {
			t.Errorf("layer %s: %v", id[:12], err)
		}
		if _, err := os.Stat(filepath.Join(c.root, "overlay-layers", id+".tar-split.gz")); err != nil {
			t.Errorf("tar-split of %s: %v", id[:12], err)
		}
	}
}

// TestCheckShowsOpenRecovery: a layer a crash left flagged incomplete is
// removed when the store opens; check prints that it was, and exits 0.
func TestCheckShowsOpenRecovery(t *testing.T) {
	c := newCLI(t)
	l1, l2, _ := c.importChain()
	layersJSON := filepath.Join(c.root, "overlay-layers", "layers.json")
	data, err := os.ReadFile(layersJSON)
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if r["id"] == l2 {
			flags, _ := r["flags"].(map[string]any)
			if flags == nil {
				flags = map[string]any{}
			}
			flags["incomplete"] = true
			r["flags"] = flags
		}
	}
	if data, err = json.Marshal(records); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layersJSON, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.ok("check")
	for _, want := range []string{"incomplete " + l2, "(repaired at open)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if ids := c.layersJSON(); len(ids) != 1 || ids[0].ID != l1 {
		t.Errorf("layers after recovery: %v", ids)
	}
}
