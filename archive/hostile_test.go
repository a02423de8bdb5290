package archive_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/archive"
	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/overlay"
	"github.com/stratafs/strata/testutil"
	"github.com/stratafs/strata/testutil/hostile"
)

var updateCorpus = flag.Bool("update-hostile", false, "rewrite testdata/hostile from the generators")

// corpusVictim is the victim path the files in testdata/hostile are built
// for; the tests themselves aim every case at a victim in their temp dir.
const corpusVictim = "/tmp/strata-victim"

// maxCorpusFile keeps big generated cases out of testdata: they are made
// by the generator at test time only.
const maxCorpusFile = 256 << 10

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func corpusFile(name string) string {
	slug := strings.Trim(slugRE.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(slug) > 60 {
		slug = slug[:60]
	}
	return filepath.Join("testdata", "hostile", slug+".tar")
}

// TestHostileCorpusFiles checks that testdata/hostile holds exactly what
// the generators in testutil/hostile produce (run with -update-hostile to
// rewrite it), so no file there lacks its generator.
func TestHostileCorpusFiles(t *testing.T) {
	cases := hostile.Corpus(corpusVictim)
	if len(cases) < 60 {
		t.Errorf("corpus has %d cases, want at least 60", len(cases))
	}
	want := map[string]bool{}
	for _, c := range cases {
		if len(c.Blob) > maxCorpusFile {
			continue
		}
		file := corpusFile(c.Name)
		if want[file] {
			t.Fatalf("two cases map to %s", file)
		}
		want[file] = true
		if *updateCorpus {
			if err := os.WriteFile(file, c.Blob, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, c.Blob) {
			t.Errorf("%s is not what the generator of %q makes (run go test ./archive -run TestHostileCorpusFiles -update-hostile)", file, c.Name)
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.tar"))
	for _, f := range files {
		if !want[f] {
			if *updateCorpus {
				os.Remove(f)
				continue
			}
			t.Errorf("%s has no generator", f)
		}
	}
}

// makeVictim builds the sentinel dir hostile cases aim at.
func makeVictim(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileApply applies every case of the corpus that archive.Apply
// judges alone into a layer dir next to a victim dir.
func TestHostileApply(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	makeVictim(t, victim)
	before := testutil.Snapshot(t, victim)
	checkDescribe(t, victim, hostile.Victim(), testutil.Snapshot(t, victim))

	for i, c := range hostile.Corpus(victim) {
		if c.StoreOnly {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			root := filepath.Join(base, fmt.Sprintf("layer%d", i))
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := archive.Apply(root, bytes.NewReader(c.Blob), archive.Options{})
			checkOutcome(t, c, err)
			if err == nil {
				checkDescribe(t, root, c.Tree, testutil.Snapshot(t, root))
			}
			if d := before.Diff(testutil.Snapshot(t, victim)); len(d) != 0 {
				t.Fatalf("victim changed: %v", d)
			}
		})
	}
}

// checkOutcome asserts the error a case wants, or none.
func checkOutcome(t *testing.T, c hostile.Case, err error) {
	t.Helper()
	if c.WantErr == "" {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want an error containing %q, got success", c.WantErr)
	}
	if !strings.Contains(err.Error(), c.WantErr) {
		t.Errorf("error %q does not contain %q", err, c.WantErr)
	}
	if !errors.Is(err, driver.ErrInvalidLayerData) {
		t.Errorf("error %q does not match ErrInvalidLayerData", err)
	}
}

// openHostileStore opens an overlay-backed store in a temp store whose
// parent also holds a victim dir; it returns the store and the victim.
func openHostileStore(t *testing.T, maxDiff int64) (*layers.Store, string) {
	t.Helper()
	graph, run := testutil.TempStore(t)
	victim := filepath.Join(filepath.Dir(graph), "victim")
	makeVictim(t, victim)
	drv, err := overlay.New(filepath.Join(graph, "overlay"), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Cleanup() })
	s, err := layers.Open(layers.Options{GraphRoot: graph, RunRoot: run, Driver: drv, MaxDiffSize: maxDiff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// One layer in and out, so that layers.json exists before the cases.
	if _, err := s.Create(layers.CreateOptions{ID: strings.Repeat("f", 64)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(strings.Repeat("f", 64)); err != nil {
		t.Fatal(err)
	}
	return s, victim
}

// TestHostilePut runs every case through layers.Put on an overlay store:
// the same outcome as Apply, nothing outside the store changed, and a
// failed Put leaves no record, driver dir, short link or tar-split file.
func TestHostilePut(t *testing.T) {
	testutil.RequireRoot(t)
	s, victim := openHostileStore(t, 0)
	graph := s.GraphRoot()
	before := testutil.Snapshot(t, victim)

	for i, c := range hostile.Corpus(victim) {
		t.Run(c.Name, func(t *testing.T) {
			storeBefore := shape(t, graph)
			id := fmt.Sprintf("%064x", i+1)
			opts := layers.PutOptions{ID: id, ExpectedUncompressedDigest: digest.Digest(c.ExpectedDigest)}
			l, err := s.Put(opts, bytes.NewReader(c.Blob))
			checkOutcome(t, c, err)
			if err == nil {
				diff := filepath.Join(graph, "overlay", id, "diff")
				checkDescribe(t, diff, c.Tree, testutil.Snapshot(t, diff))
				if why, ok := diffBroken[c.Name[:3]]; ok {
					t.Logf("Diff not checked: %s", why)
				} else {
					checkDiffExact(t, s, l, c.Blob)
				}
				if err := s.Delete(id); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			} else if err != nil && !strings.Contains(err.Error(), id) {
				t.Errorf("error %q does not name layer %s", err, id)
			}
			if d := diffShape(storeBefore, shape(t, graph)); len(d) != 0 {
				t.Errorf("store changed after the case: %v", d)
			}
			if list, err := s.List(); err != nil || len(list) != 0 {
				t.Errorf("List = %v, %v; want empty", list, err)
			}
			if d := before.Diff(testutil.Snapshot(t, victim)); len(d) != 0 {
				t.Fatalf("victim changed: %v", d)
			}
		})
	}
}

// diffBroken lists the cases whose export through the tar-split record
// fails today, by case id, with the reason.
var diffBroken = map[string]string{}

// checkDiffExact exports a layer Put made: its tar-split record gives back
// the tar it was made from, byte for byte (blob itself when it was plain),
// sparse entries included.
func checkDiffExact(t *testing.T, s *layers.Store, l *layers.Layer, blob []byte) {
	t.Helper()
	got := digest.SHA256.Digester()
	var plain bytes.Buffer
	w := io.Writer(got.Hash())
	if l.CompressedDigest == l.UncompressedDigest {
		w = io.MultiWriter(w, &plain)
	}
	src, err := s.Diff(l.ID, w)
	if err != nil {
		t.Errorf("Diff: %v", err)
		return
	}
	if src != layers.DiffFromTarSplit || got.Digest() != l.UncompressedDigest {
		t.Errorf("Diff from %s has digest %s, want the tar-split record's %s", src, got.Digest(), l.UncompressedDigest)
	}
	if l.CompressedDigest == l.UncompressedDigest && !bytes.Equal(plain.Bytes(), blob) {
		t.Errorf("Diff gave %d bytes, not the %d bytes put", plain.Len(), len(blob))
	}
}

// shape is the set of paths below dir with their types: what a failed Put
// must leave as it found (file contents and times of layers.json and the
// lock change with every save).
func shape(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, n := range testutil.Snapshot(t, dir) {
		out[p] = n.Type
	}
	return out
}

func diffShape(a, b map[string]string) []string {
	var d []string
	for p, typ := range a {
		if b[p] != typ {
			d = append(d, fmt.Sprintf("%s: %s -> %q", p, typ, b[p]))
		}
	}
	for p, typ := range b {
		if _, ok := a[p]; !ok {
			d = append(d, fmt.Sprintf("%s: new %s", p, typ))
		}
	}
	return d
}
