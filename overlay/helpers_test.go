package overlay

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/testutil"
)

// newTestDriver opens a driver in a fresh temp store. Its cleanup (which
// runs before TempStore's) unmounts what the driver mounted.
func newTestDriver(t testing.TB, opts Options) *Driver {
	t.Helper()
	testutil.RequireRoot(t)
	graph, _ := testutil.TempStore(t)
	return openTestDriver(t, filepath.Join(graph, "overlay"), opts)
}

func openTestDriver(t testing.TB, home string, opts Options) *Driver {
	t.Helper()
	d, err := New(home, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", home, err)
	}
	t.Cleanup(func() {
		if err := d.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return d
}

func mustCreate(t testing.TB, d *Driver, id, parent string) {
	t.Helper()
	if err := d.Create(id, parent, nil); err != nil {
		t.Fatalf("Create(%s, %s): %v", id, parent, err)
	}
}

// writeDiffFile writes a file (and its parents) straight into a layer's
// diff dir.
func writeDiffFile(t testing.TB, d *Driver, id, name, content string) {
	t.Helper()
	p := filepath.Join(d.diffDir(id), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeWhiteout makes the overlay whiteout for name in a layer's diff.
func writeWhiteout(t testing.TB, d *Driver, id, name string) {
	t.Helper()
	p := filepath.Join(d.diffDir(id), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p, unix.S_IFCHR|0o000, 0); err != nil {
		t.Fatal(err)
	}
}

// makeOpaque makes dir (created if needed) an opaque dir in a layer's diff.
func makeOpaque(t testing.TB, d *Driver, id, dir string) {
	t.Helper()
	p := filepath.Join(d.diffDir(id), dir)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	mountOpts []string // per-mount options (field 6)
	fsType    string
	superOpts []string // per-superblock options (last field)
}

// findMount reads /proc/self/mountinfo with no line length limit (a deep
// stack's line is long) and returns the newest entry mounted at target.
func findMount(t testing.TB, target string) (mountEntry, bool) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found mountEntry
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), " ")
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 > len(fields) || unescapeMount(fields[4]) != target {
			continue
		}
		found = mountEntry{
			mountOpts: strings.Split(fields[5], ","),
			fsType:    fields[sep+1],
			superOpts: strings.Split(fields[len(fields)-1], ","),
		}
		ok = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading mountinfo: %v", err)
	}
	return found, ok
}

// unescapeMount undoes the octal escapes (\040 and so on) of mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			okDigits := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					okDigits = false
				}
				v = v*8 + int(c-'0')
			}
			if okDigits {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// countOpt counts the options equal to opt or starting with opt+"=".
func countOpt(opts []string, opt string) int {
	n := 0
	for _, o := range opts {
		if o == opt || strings.HasPrefix(o, opt+"=") {
			n++
		}
	}
	return n
}

func hasOpt(opts []string, opt string) bool {
	for _, o := range opts {
		if o == opt {
			return true
		}
	}
	return false
}

// listHome returns the names in the driver home and in home/l.
func listHome(t testing.TB, d *Driver) (top, links []string) {
	t.Helper()
	for _, dir := range []string{d.home, d.linkDir()} {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		if dir == d.home {
			top = names
		} else {
			links = names
		}
	}
	return top, links
}
