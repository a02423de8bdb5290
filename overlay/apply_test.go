package overlay

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

func mustApply(t *testing.T, d *Driver, id string, tb *testutil.Tar) driver.ApplyResult {
	t.Helper()
	res, err := d.ApplyDiff(id, driver.ApplyDiffOpts{Diff: tb.Reader()})
	if err != nil {
		t.Fatalf("ApplyDiff(%s): %v", id, err)
	}
	return res
}

// Whiteouts and opaque dirs from tars, stacked three deep, give the merged
// tree OCI layer semantics promise.
func TestApplyDiffChain(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	res := mustApply(t, d, "A", testutil.NewTar().
		Dir("a").File("a/1", "a1").File("a/2", "a2").
		Dir("b").File("b/x", "bx", testutil.Owner(1000, 1001)).
		Dir("keep").File("keep/gone", "g").File("keep/stay", "s"))
	if !slices.Equal(res.UIDs, []uint32{0, 1000}) || !slices.Equal(res.GIDs, []uint32{0, 1001}) {
		t.Errorf("ApplyDiff(A) owners %v %v", res.UIDs, res.GIDs)
	}

	mustCreate(t, d, "B", "A")
	mustApply(t, d, "B", testutil.NewTar().
		Dir("a").Whiteout("a/1").
		Dir("b").Opaque("b").File("b/y", "by"))
	mustCreate(t, d, "C", "B")
	// C01: a whiteout for a path that only a lower layer has.
	mustApply(t, d, "C", testutil.NewTar().File("c", "c").Dir("keep").Whiteout("keep/gone"))

	var st unix.Stat_t
	if err := unix.Lstat(d.diffDir("C")+"/keep/gone", &st); err != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("C01 keep/gone in C's diff: mode %o rdev %d, %v; want char 0:0", st.Mode, st.Rdev, err)
	}

	want := []string{"a/", "a/2", "b/", "b/y", "c", "keep/", "keep/stay"}
	for _, ro := range []bool{true, false} {
		p, err := d.Mount("C", driver.MountOpts{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		if got := listTree(t, p); !slices.Equal(got, want) {
			t.Errorf("ro=%v merged = %v, want %v", ro, got, want)
		}
		if got := readString(t, p+"/b/y"); got != "by" {
			t.Errorf("b/y = %q", got)
		}
		if err := d.Unmount("C"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestApplyDiffErrors(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")

	tests := []struct {
		name, id string
		tar      *testutil.Tar
		want     error
		mention  []string
	}{
		{"unknown layer", "nope", testutil.NewTar().File("f", "f"), driver.ErrLayerUnknown, []string{"nope"}},
		{"bad entry", "A", testutil.NewTar().Hardlink("h", "missing"), driver.ErrInvalidLayerData,
			[]string{"A", `"h"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.ApplyDiff(tc.id, driver.ApplyDiffOpts{Diff: tc.tar.Reader()})
			if !errors.Is(err, tc.want) {
				t.Fatalf("ApplyDiff = %v, want %v", err, tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not name %s", err, m)
				}
			}
		})
	}
	if _, err := d.ApplyDiff("A", driver.ApplyDiffOpts{}); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("ApplyDiff without a diff = %v", err)
	}
}
