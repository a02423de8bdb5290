package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/internal/image/imagetest"
	"github.com/stratafs/strata/layers"
	"github.com/stratafs/strata/testutil"
)

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestDiffOutputFailure: a failed "diff -o FILE" leaves FILE as it was and
// no temporary file; "-o DIR" is an error; a written file gets the umask's
// mode.
func TestDiffOutputFailure(t *testing.T) {
	c := newCLI(t)
	id := c.importTar(chainL1())
	out := t.TempDir()
	precious := filepath.Join(out, "f")
	if err := os.WriteFile(precious, []byte("precious\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	msg := c.fails(nil, "diff", "-o", precious, "nonexist")
	if !strings.Contains(msg, "nonexist") {
		t.Errorf("message %q does not name the layer", msg)
	}
	if got := readFile(t, precious); got != "precious\n" {
		t.Errorf("a failed diff changed the target to %q", got)
	}
	if fi, err := os.Stat(precious); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("a failed diff changed the target's mode: %v %v", fi.Mode(), err)
	}

	sub := filepath.Join(out, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if msg := c.fails(nil, "diff", "-o", sub, id); !strings.Contains(msg, "directory") {
		t.Errorf("diff -o DIR: message %q does not say it is a directory", msg)
	}
	if names := dirNames(t, out); len(names) != 2 {
		t.Errorf("failed diffs left files behind: %v", names)
	}
	if names := dirNames(t, sub); len(names) != 0 {
		t.Errorf("diff -o DIR wrote into it: %v", names)
	}

	// Success replaces the target with a file of mode 0666 less the umask.
	umask := unix.Umask(0)
	unix.Umask(umask)
	want := os.FileMode(0o666 &^ umask)
	c.ok("diff", "-o", precious, id)
	if fi, err := os.Stat(precious); err != nil || fi.Mode().Perm() != want || fi.Size() == 0 {
		t.Errorf("diff -o: mode %v size %d (%v), want mode %v and the tar", fi.Mode(), fi.Size(), err, want)
	}
	if names := dirNames(t, out); len(names) != 2 {
		t.Errorf("diff left files behind: %v", names)
	}
}

// TestEmptyFlagValues: an explicitly empty --parent or --name is a usage
// error, not a parentless or unnamed layer.
func TestEmptyFlagValues(t *testing.T) {
	c := newCLI(t)
	base := c.importTar(chainL1(), "--name", "base")
	tarPath := filepath.Join(t.TempDir(), "l.tar")
	if err := os.WriteFile(tarPath, chainL3(), 0o644); err != nil {
		t.Fatal(err)
	}
	const toc = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"import parent", []string{"import", "--parent", "", tarPath}, "--parent: empty layer reference"},
		{"import parent=", []string{"import", "--parent=", tarPath}, "--parent: empty layer reference"},
		{"import name", []string{"import", "--parent", base, "--name", "x", "--name", "", tarPath}, "--name: empty name"},
		{"import --digest parent", []string{"--als", t.TempDir(), "import", "--ref", "r", "--digest", toc,
			"--parent", "", tarPath}, "--parent: empty layer reference"},
		{"create parent", []string{"create", "--parent", ""}, "--parent: empty layer reference"},
		{"create name", []string{"create", "--name", ""}, "--name: empty name"},
		{"als put parent", []string{"--als", t.TempDir(), "als", "put", "--parent", "", "--ref", "r", toc},
			"--parent: empty layer reference"},
		{"import-image name", []string{"import-image", "--name", "", t.TempDir()}, "--name: empty name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(nil, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, exitUsage, tc.want)
			}
		})
	}
	if list := c.layersJSON(); len(list) != 1 {
		t.Errorf("store holds %d layers, want only the base", len(list))
	}
}

// TestNoStore: with a mistyped (relative, missing) --root the verbs that
// only read fail naming the absolute root and create nothing; a verb that
// writes creates the store.
func TestNoStore(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	runIn := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(strataBin, append([]string{"--root", "rr", "--runroot", "rrun"}, args...)...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}
	t.Cleanup(func() { testutil.UnmountBelow(dir) })

	root := filepath.Join(dir, "rr")
	want := "strata: no store at " + root + " (" + filepath.Join(root, "overlay-layers", "layers.json") +
		" does not exist)\n"
	const toc = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	for _, args := range [][]string{
		{"layers"}, {"layers", "--json"}, {"layer", "x"}, {"diff", "x"}, {"diff", "-o", "out.tar", "x"},
		{"changes", "x"}, {"status"}, {"check"}, {"--als", dir, "als", "lookup", "--ref", "r", toc},
	} {
		r := runIn(args...)
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", args, r.code, r.stderr, want)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Fatalf("%v created %v", args, names)
		}
	}

	id := lastLine(runIn("create", "--name", "first").stdout)
	if r := runIn("layers"); r.code != 0 || !strings.Contains(r.stdout, shortID(id)) {
		t.Errorf("after create: layers exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runIn("status"); !strings.Contains(r.stdout, "Graph root: "+root+"\n") {
		t.Errorf("status does not show the absolute root:\n%s", r.stdout)
	}
	runIn("rm", id)
}

// TestMaxSize: --max-size stops a layer that inflates beyond it, naming
// the limit, and leaves no layer; bad sizes are usage errors.
func TestMaxSize(t *testing.T) {
	c := newCLI(t)
	base := c.importTar(chainL1())

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	tarBytes := testutil.NewTar().File("zeros", string(make([]byte, 16<<20))).Bytes()
	zw.Write(tarBytes)
	zw.Close()
	path := filepath.Join(t.TempDir(), "bomb.tar.gz")
	if err := os.WriteFile(path, bomb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := c.fails(nil, "import", "--max-size", "1M", path)
	if !strings.Contains(msg, "1048576") {
		t.Errorf("message %q does not name the limit", msg)
	}

	img := imagetest.Image{Ref: "example.com/bomb:1", Layers: []imagetest.Layer{imagetest.NewLayer(tarBytes, "gzip")}}
	imgDir := filepath.Join(t.TempDir(), "img")
	imagetest.WriteOCILayout(t, imgDir, img)
	// import-image reports progress on stderr before the error.
	if r := c.run(nil, "import-image", "--max-size", "1m", imgDir); r.code != exitFailure ||
		!strings.Contains(r.stderr, "strata: import-image") || !strings.Contains(r.stderr, "1048576") {
		t.Errorf("import-image: exit %d, stderr %q; want exit 1 naming the limit", r.code, r.stderr)
	}
	if list := c.layersJSON(); len(list) != 1 || list[0].ID != base {
		t.Errorf("layers after the refused imports: %+v", list)
	}

	// A limit above the size lets the layer in.
	c.ok("import", "--max-size", "17M", path)

	for _, bad := range []string{"0", "-1", "1X", "K", "9000000T"} {
		r := c.run(nil, "import", "--max-size", bad, path)
		if r.code != exitUsage || !strings.Contains(r.stderr, "max-size") {
			t.Errorf("--max-size %s: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
}

// TestUnknownSize: a layer whose size is not known (-1, as from an
// additional layer store) shows "unknown", never "-1 B".
func TestUnknownSize(t *testing.T) {
	l := layers.Layer{ID: strings.Repeat("ab", 32), UncompressedSize: -1, CompressedSize: -1}
	var table, details bytes.Buffer
	if err := writeLayerTable(&table, []layers.Layer{l}); err != nil {
		t.Fatal(err)
	}
	if err := writeLayerDetails(&details, &l, 0); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{table.String(), details.String()} {
		if strings.Contains(out, "-1") || !strings.Contains(out, "unknown") {
			t.Errorf("size shown as:\n%s", out)
		}
	}
}

// TestHelpVerbColumn: in "strata --help" every verb's summary starts in
// the same column, however long the verb.
func TestHelpVerbColumn(t *testing.T) {
	r := runStrata(t, nil, "--help")
	_, list, ok := strings.Cut(r.stdout, "\nVerbs:\n")
	if !ok {
		t.Fatalf("no verb list:\n%s", r.stdout)
	}
	column := -1
	for _, v := range verbs {
		for _, line := range strings.Split(list, "\n") {
			if !strings.HasPrefix(line, "  "+v.name+" ") {
				continue
			}
			col := len(line) - len(strings.TrimLeft(line[2+len(v.name):], " "))
			if column < 0 {
				column = col
			} else if col != column {
				t.Errorf("verb %s: summary at column %d, want %d:\n%s", v.name, col, column, list)
			}
		}
	}
}
