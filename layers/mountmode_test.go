package layers

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// TestMountOtherReadOnlyness: a layer already mounted (its count above 0)
// asked for with the other read-only-ness fails with the driver's
// ErrLayerMounted error, from this store and from a second store of the
// same roots (another process), and the count stays.
func TestMountOtherReadOnlyness(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name          string
		first, second bool // ReadOnly of the two Mounts
		want          string
	}{
		{"rw then ro", false, true, "already mounted read-write"},
		{"ro then rw", true, false, "already mounted read-only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			graph, run := testutil.TempStore(t)
			s, _ := openOverlay(t, graph, run)
			if _, err := s.Create(CreateOptions{ID: "ctr"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Mount("ctr", MountOptions{ReadOnly: tc.first}); err != nil {
				t.Fatal(err)
			}
			other, _ := openOverlay(t, graph, run)
			for i, st := range []*Store{s, other} {
				_, err := st.Mount("ctr", MountOptions{ReadOnly: tc.second})
				if !errors.Is(err, driver.ErrLayerMounted) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("store %d: second Mount = %v, want ErrLayerMounted saying %q", i, err, tc.want)
				}
				if n, err := st.MountCount("ctr"); err != nil || n != 1 {
					t.Errorf("store %d: MountCount = %d, %v; want 1", i, n, err)
				}
			}
			if _, err := s.Mount("ctr", MountOptions{ReadOnly: tc.first}); err != nil {
				t.Errorf("Mount of the same read-only-ness: %v", err)
			}
			if n, _ := s.MountCount("ctr"); n != 2 {
				t.Errorf("MountCount = %d after a matching Mount, want 2", n)
			}
			if still, err := s.Unmount("ctr", true); err != nil || still {
				t.Errorf("Unmount = %v, %v", still, err)
			}
		})
	}
}
