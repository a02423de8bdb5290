package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratafs/strata/testutil"
	"golang.org/x/sys/unix"
)

// The three layers of the chain the end-to-end tests import. They carry
// the merged-view halves of cases C01 (a whiteout hides a lower file), C02
// (an opaque dir hides the lower dir's children, marker in the middle) and
// C08 (a file replaces a lower dir).
func chainL1() []byte {
	return testutil.NewTar().
		Dir("etc/").File("etc/gone", "lower file\n").File("etc/hosts", "127.0.0.1 localhost\n").
		Dir("foo/").File("foo/.abc", "a").Dir("foo/cde/").File("foo/cde/def", "d").File("foo/fgh", "f").
		Dir("d/").File("d/k", "k").
		Bytes()
}

func chainL2() []byte {
	return testutil.NewTar().
		Dir("etc/").Whiteout("etc/gone").
		Dir("foo/").File("foo/.bce", "b").Opaque("foo").Dir("foo/cde/").File("foo/cde/efg", "e").
		File("d", "d is a file now\n").
		Zstd()
}

func chainL3() []byte {
	return testutil.NewTar().
		Dir("bin/").File("bin/tool", "#!/bin/sh\n", testutil.Mode(0o755)).
		Gzip()
}

// layerRecord is the part of a layer's JSON record the tests look at.
type layerRecord struct {
	ID                 string   `json:"id"`
	Names              []string `json:"names"`
	Parent             string   `json:"parent"`
	UncompressedDigest string   `json:"diff-digest"`
	UncompressedSize   int64    `json:"diff-size"`
	CompressedSize     int64    `json:"compressed-size"`
	Compression        int      `json:"compression"`
}

func (c *cli) layersJSON() []layerRecord {
	c.t.Helper()
	var list []layerRecord
	out := c.ok("layers", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		c.t.Fatalf("layers --json does not parse: %v\n%s", err, out)
	}
	return list
}

// importChain imports L1 (plain, by file), L2 (zstd, from stdin, parent by
// name) and L3 (gzip, parent by id prefix) and returns their ids.
func (c *cli) importChain() (l1, l2, l3 string) {
	c.t.Helper()
	l1 = c.importTar(chainL1(), "--name", "l1")

	r := c.run(chainL2(), "import", "--parent", "l1", "--name", "l2", "-")
	if r.code != 0 {
		c.t.Fatalf("import from stdin: exit %d: %s", r.code, r.stderr)
	}
	l2 = lastLine(r.stdout)

	l3 = c.importTar(chainL3(), "--parent", l2[:12], "--name", "l3")
	return l1, l2, l3
}

// TestImportChainMount imports three layers, mounts the top one and checks
// the merged tree, then writes through a writable layer on top.
func TestImportChainMount(t *testing.T) {
	c := newCLI(t)
	l1, l2, l3 := c.importChain()

	list := c.layersJSON()
	if len(list) != 3 {
		t.Fatalf("layers --json: %d records, want 3: %+v", len(list), list)
	}
	byID := map[string]layerRecord{}
	for _, l := range list {
		byID[l.ID] = l
	}
	for _, want := range []struct {
		id, parent, name string
		compression      int
	}{{l1, "", "l1", 0}, {l2, l1, "l2", 4}, {l3, l2, "l3", 2}} {
		got, ok := byID[want.id]
		switch {
		case !ok:
			t.Errorf("layer %s missing from layers --json", want.id)
		case got.Parent != want.parent || len(got.Names) != 1 || got.Names[0] != want.name:
			t.Errorf("layer %s: parent %q names %v, want %q [%s]", want.id, got.Parent, got.Names,
				want.parent, want.name)
		case got.Compression != want.compression:
			t.Errorf("layer %s: compression %d, want %d", want.name, got.Compression, want.compression)
		case !strings.HasPrefix(got.UncompressedDigest, "sha256:") || got.UncompressedSize <= 0:
			t.Errorf("layer %s: digest %q size %d", want.name, got.UncompressedDigest, got.UncompressedSize)
		}
	}

	mnt := strings.TrimSpace(c.ok("mount", "--read-only", "l3"))
	mounted := true
	t.Cleanup(func() {
		if mounted {
			c.run(nil, "unmount", "--force", l3)
		}
	})
	if !strings.HasPrefix(mnt, c.root+"/") {
		t.Fatalf("mount point %q is not below the graph root %s", mnt, c.root)
	}

	t.Run("C01 whiteout hides the lower file", func(t *testing.T) {
		if _, err := os.Lstat(filepath.Join(mnt, "etc/gone")); !os.IsNotExist(err) {
			t.Errorf("merged etc/gone: %v, want it absent", err)
		}
		if got := readFile(t, filepath.Join(mnt, "etc/hosts")); got != "127.0.0.1 localhost\n" {
			t.Errorf("merged etc/hosts = %q", got)
		}
	})
	t.Run("C02 opaque dir hides the lower children", func(t *testing.T) {
		want := []string{".bce", "cde", "cde/efg"}
		if got := walk(t, filepath.Join(mnt, "foo")); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("merged foo = %v, want %v", got, want)
		}
	})
	t.Run("C08 file replaces the lower dir", func(t *testing.T) {
		if got := readFile(t, filepath.Join(mnt, "d")); got != "d is a file now\n" {
			t.Errorf("merged d = %q, want the L2 file", got)
		}
	})
	t.Run("top layer's own file", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(mnt, "bin/tool"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("merged bin/tool: %v %v, want mode 0755", fi, err)
		}
	})

	c.ok("unmount", "l3")
	mounted = false
	if left := mountsBelow(t, c.root); len(left) > 0 {
		t.Fatalf("still mounted after unmount: %v", left)
	}

	t.Run("writable layer records a whiteout", func(t *testing.T) {
		top := lastLine(c.ok("create", "--parent", "l3", "--name", "top"))
		rw := strings.TrimSpace(c.ok("mount", "top"))
		defer c.run(nil, "unmount", "--force", top)

		if err := os.WriteFile(filepath.Join(rw, "etc/hosts"), []byte("changed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(rw, "bin/tool")); err != nil {
			t.Fatal(err)
		}

		diff := filepath.Join(c.root, "overlay", top, "diff")
		if got := readFile(t, filepath.Join(diff, "etc/hosts")); got != "changed\n" {
			t.Errorf("diff etc/hosts = %q", got)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(diff, "bin/tool"), &st); err != nil {
			t.Fatalf("no whiteout for bin/tool: %v", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("diff bin/tool: mode %o rdev %d, want a char device 0:0", st.Mode, st.Rdev)
		}

		msg := c.fails(nil, "rm", "top")
		if !strings.Contains(msg, "mounted") {
			t.Errorf("rm of a mounted layer: %q, want it to say mounted", msg)
		}
		c.ok("unmount", "top")
		c.ok("rm", "top")
	})
}

// TestRemoveAndMountCounts checks rm refusals, nested mount counts and
// --force, and removing a chain top-down.
func TestRemoveAndMountCounts(t *testing.T) {
	c := newCLI(t)
	l1, l2, l3 := c.importChain()

	msg := c.fails(nil, "rm", "l2")
	if !strings.Contains(msg, "children") || !strings.Contains(msg, l2) {
		t.Errorf("rm of a parent: %q, want it to say children and name %s", msg, l2)
	}

	imported := strings.TrimSpace(c.ok("mount", "l3"))
	err := os.WriteFile(filepath.Join(imported, "new"), nil, 0o644)
	c.ok("unmount", "l3")
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into a mounted imported layer: %v, want EROFS", err)
	}

	top := lastLine(c.ok("create", "--parent", l3))
	first := strings.TrimSpace(c.ok("mount", top))
	second := strings.TrimSpace(c.ok("mount", top[:12]))
	if first != second {
		t.Errorf("second mount at %q, first at %q", second, first)
	}
	if out := c.ok("unmount", top); !strings.Contains(out, "still mounted") {
		t.Errorf("unmount of a twice-mounted layer printed %q, want still mounted", out)
	}
	if left := mountsBelow(t, c.root); len(left) != 1 {
		t.Errorf("after one of two unmounts: mounts %v, want one", left)
	}
	c.ok("mount", top)
	c.ok("unmount", "--force", top)
	if left := mountsBelow(t, c.root); len(left) != 0 {
		t.Errorf("after unmount --force: mounts %v", left)
	}

	for _, id := range []string{top, l3, l2, l1} {
		if got := lastLine(c.ok("rm", id)); got != id {
			t.Errorf("rm printed %q, want %s", got, id)
		}
	}
	if list := c.layersJSON(); len(list) != 0 {
		t.Errorf("layers after removing all: %+v", list)
	}
	c.fails(nil, "rm", l1)
}

// TestNamesAndLookup checks names, prefix lookup, layer and layers output.
func TestNamesAndLookup(t *testing.T) {
	c := newCLI(t)
	l1, l2, _ := c.importChain()

	c.ok("names", l1, "base", "debian")
	var rec layerRecord
	out := c.ok("layer", "debian", "--json")
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("layer --json does not parse: %v\n%s", err, out)
	}
	if rec.ID != l1 || strings.Join(rec.Names, ",") != "base,debian" {
		t.Errorf("layer debian: id %s names %v, want %s [base debian]", rec.ID, rec.Names, l1)
	}
	c.fails(nil, "layer", "l1") // names replaced: the old name is gone

	details := c.ok("layer", l2[:8])
	for _, want := range []string{"ID:", l2, "Parent:", l1, "Diff digest:", "sha256:", "Mounts:"} {
		if !strings.Contains(details, want) {
			t.Errorf("layer %s lacks %q:\n%s", l2[:8], want, details)
		}
	}

	msg := c.fails(nil, "names", l2, "base")
	if !strings.Contains(msg, "base") {
		t.Errorf("taking a name in use: %q, want it to name base", msg)
	}
	c.ok("names", l1)
	if out := c.ok("layer", "--json", l1); strings.Contains(out, `"names"`) {
		t.Errorf("names cleared but record still has names:\n%s", out)
	}

	table := strings.Split(strings.TrimSpace(c.ok("layers")), "\n")
	if len(table) != 4 || !strings.HasPrefix(table[0], "ID") {
		t.Fatalf("layers table:\n%s", strings.Join(table, "\n"))
	}
	for _, col := range []string{"NAMES", "PARENT", "SIZE", "CREATED"} {
		if !strings.Contains(table[0], col) {
			t.Errorf("layers header lacks %s: %q", col, table[0])
		}
	}
	if !strings.Contains(strings.Join(table[1:], "\n"), l2[:12]+" ") {
		t.Errorf("layers table lacks short id %s:\n%s", l2[:12], strings.Join(table, "\n"))
	}

	ro := lastLine(c.ok("create", "--read-only", "--name", "ro"))
	if !strings.Contains(c.ok("layer", ro), "true") {
		t.Errorf("create --read-only: layer does not say read-only")
	}
	if out := c.ok("status"); !strings.Contains(out, "Driver: overlay") {
		t.Errorf("status:\n%s", out)
	}

	c.fails(nil, "layer", "no-such-layer")
}

// TestImportBadInput checks that a failed import says why, naming the file
// or tar entry, and leaves no layer behind.
func TestImportBadInput(t *testing.T) {
	c := newCLI(t)
	base := c.importTar(chainL1(), "--name", "base")

	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i*7 + i>>8)
	}
	tests := []struct {
		name  string
		stdin []byte
		args  []string
		want  []string
	}{
		{"missing file", nil, []string{"import", "/nonexistent/layer.tar"}, []string{"/nonexistent/layer.tar"}},
		{"C07 repeated path", testutil.NewTar().File("file", "a").File("file", "b").Bytes(),
			[]string{"import", "--parent", "base", "-"}, []string{`"file"`}},
		{"C06 hardlink to a lower file", testutil.NewTar().Hardlink("b", "etc/hosts").Bytes(),
			[]string{"import", "--parent", "base", "-"}, []string{`"b"`}},
		{"C13 stream cut inside an entry", testutil.NewTar().Dir("b/").File("b/c", strings.Repeat("x", 4096)).CutIn("b/c"),
			[]string{"import", "-"}, nil},
		{"C14 junk", junk, []string{"import", "-"}, nil},
		{"unknown parent", chainL1(), []string{"import", "--parent", "nope", "-"}, []string{"nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := c.fails(tc.stdin, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not name %s", msg, w)
				}
			}
			list := c.layersJSON()
			if len(list) != 1 || list[0].ID != base {
				t.Errorf("layers after a failed import: %+v, want only %s", list, base)
			}
			entries, err := os.ReadDir(filepath.Join(c.root, "overlay"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "l" && e.Name() != base && !strings.HasPrefix(e.Name(), ".") {
					t.Errorf("driver dir %s left after a failed import", e.Name())
				}
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// walk lists the paths below dir, relative and sorted.
func walk(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			rel, _ := filepath.Rel(dir, path)
			paths = append(paths, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	return paths
}
