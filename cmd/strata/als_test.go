package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/als"
)

// TestALSVerbs drives --als, "als lookup", "als put" and "import --ref
// --digest" against the FUSE test store, then checks the store's use and
// release counts balance once the layers are removed.
func TestALSVerbs(t *testing.T) {
	testutil.RequireRoot(t)
	store := als.StartFUSE(t)
	const ref = "docker.io/library/busybox:latest"
	midTOC, otherTOC := digest.FromString("cli mid"), digest.FromString("cli other")
	store.AddLayer(t, als.Layer{Ref: ref, TOCDigest: midTOC, Files: map[string]string{"mid-file": "from als"}})
	store.AddLayer(t, als.Layer{Ref: ref, TOCDigest: otherTOC, Files: map[string]string{"other": "x"}})
	c := newCLI(t)
	alsFlag := []string{"--als", store.Mountpoint + ":ref"}
	withALS := func(args ...string) []string { return append(append([]string{}, alsFlag...), args...) }

	base := c.importTar(testutil.NewTar().File("base-file", "from base").Bytes())

	var info map[string]any
	out := c.ok(withALS("als", "lookup", "--ref", ref, midTOC.String())...)
	if err := json.Unmarshal([]byte(out), &info); err != nil || info["toc-digest"] != midTOC.String() {
		t.Fatalf("als lookup printed %q (%v)", out, err)
	}

	mid := lastLine(c.ok(withALS("als", "put", "--parent", base, "--name", "mid", "--ref", ref, midTOC.String())...))
	if len(mid) != 64 {
		t.Fatalf("als put printed id %q", mid)
	}
	// The test store does not know the layer's size.
	for _, args := range [][]string{{"layers"}, {"layer", "mid"}} {
		if out := c.ok(args...); strings.Contains(out, "-1 B") || strings.Contains(out, "-1 (") || !strings.Contains(out, "unknown") {
			t.Errorf("%v does not show the unknown size as such:\n%s", args, out)
		}
	}

	// The store offers otherTOC: FILE (not even a tar here) is not read.
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = c.ok(withALS("import", "--ref", ref, "--digest", otherTOC.String(), "--parent", mid, "--name", "other", junk)...)
	if !strings.Contains(out, "additional layer store") {
		t.Errorf("import from ALS did not say so: %q", out)
	}
	other := lastLine(out)

	// Not offered: FILE is imported as usual.
	tarPath := filepath.Join(t.TempDir(), "top.tar")
	if err := os.WriteFile(tarPath, testutil.NewTar().File("top-file", "from top").Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	top := lastLine(c.ok(withALS("import", "--ref", ref, "--digest", digest.FromString("absent").String(),
		"--parent", mid, tarPath)...))

	merged := lastLine(c.ok(withALS("mount", top)...))
	for name, want := range map[string]string{"base-file": "from base", "mid-file": "from als", "top-file": "from top"} {
		if got := readFile(t, filepath.Join(merged, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	c.ok("unmount", top)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"C19 bad digest", withALS("als", "lookup", "--ref", ref, "sha256:../../x"), 1, "invalid argument"},
		{"C19 ref with NUL-like control", withALS("als", "lookup", "--ref", "a\tb", midTOC.String()), 1, "control character"},
		{"C30 not offered", withALS("als", "put", "--ref", "other/ref", midTOC.String()), 1, "not known"},
		{"no --als", []string{"als", "lookup", "--ref", ref, midTOC.String()}, 2, "--als"},
		{"unknown action", withALS("als", "frob", midTOC.String()), 2, "lookup or put"},
		{"--ref without --digest", withALS("import", "--ref", ref, junk), 2, "--digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}

	for _, id := range []string{top, other, mid} {
		c.ok(withALS("rm", id)...)
	}
	for _, toc := range []digest.Digest{midTOC, otherTOC} {
		if cnt := store.Counts(ref, toc); cnt.Refs != 0 || cnt.Uses != cnt.Releases || cnt.Uses == 0 {
			t.Errorf("%s: counts %+v do not balance", toc, cnt)
		}
	}
}
