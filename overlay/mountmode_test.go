package overlay

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stratafs/strata/driver"
)

// TestKernelMessageInError: the overlay's own complaint reaches the error
// whole, without the log level letter the kernel puts in front of it.
func TestKernelMessageInError(t *testing.T) {
	d := newTestDriver(t, Options{})
	if !d.feat.newAPI {
		t.Skip("mount(2) leaves no message on a filesystem context")
	}
	mustCreate(t, d, "A", "")
	_, err := d.Mount("A", driver.MountOpts{Options: []string{"bogus_opt"}})
	const want = "(kernel: overlay: Unknown parameter 'bogus_opt')"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Mount(bogus_opt) = %v, want it to contain %q", err, want)
	}
}

func TestFsLogMessage(t *testing.T) {
	tests := []struct{ record, want string }{
		{"e overlay: Unknown parameter 'bogus_opt'\n", "overlay: Unknown parameter 'bogus_opt'"},
		{"w overlay: something odd", "warning: overlay: something odd"},
		{"i overlay: fyi", "info: overlay: fyi"},
		{"no level here", "no level here"},
		{"e", "e"},
	}
	for _, tc := range tests {
		if got := fsLogMessage(tc.record); got != tc.want {
			t.Errorf("fsLogMessage(%q) = %q, want %q", tc.record, got, tc.want)
		}
	}
}

// TestMountOtherReadOnlyness: a mounted layer asked for again with the
// other read-only-ness fails with ErrLayerMounted saying how it is
// mounted; the same read-only-ness counts one more user.
func TestMountOtherReadOnlyness(t *testing.T) {
	tests := []struct {
		name         string
		first, again bool // ReadOnly of the first and second Mount
		wantText     string
	}{
		{"rw then ro", false, true, "already mounted read-write"},
		{"ro then rw", true, false, "already mounted read-only"},
		{"rw then rw", false, false, ""},
		{"ro then ro", true, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDriver(t, Options{})
			mustCreate(t, d, "A", "")
			mustCreate(t, d, "B", "A")
			path, err := d.Mount("B", driver.MountOpts{ReadOnly: tc.first})
			if err != nil {
				t.Fatal(err)
			}
			again, err := d.Mount("B", driver.MountOpts{ReadOnly: tc.again})
			if tc.wantText == "" {
				if err != nil || again != path || d.counts["B"] != 2 {
					t.Fatalf("second Mount = %q, %v (count %d), want %q and count 2", again, err, d.counts["B"], path)
				}
				return
			}
			if !errors.Is(err, driver.ErrLayerMounted) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("second Mount = %v, want ErrLayerMounted saying %q", err, tc.wantText)
			}
			if d.counts["B"] != 1 {
				t.Errorf("count %d after the refused mount, want 1", d.counts["B"])
			}
		})
	}
}

// TestCopyUpOptions: the driver adds no metacopy=on; kernel defaults that
// turn metacopy or redirect_dir on are turned off on read-write mounts
// unless the caller chose; metacopy=on without kernel support fails.
func TestCopyUpOptions(t *testing.T) {
	tests := []struct {
		name                 string
		metacopy             bool // kernel supports metacopy
		metaDefault, redirDf bool // module parameters
		readOnly             bool
		opts                 []string
		want                 []string
		wantErr              error
	}{
		{name: "no defaults", metacopy: true, want: nil},
		{name: "redirect_dir param Y", metacopy: true, redirDf: true, want: []string{"redirect_dir=off"}},
		{name: "metacopy param Y", metacopy: true, metaDefault: true, want: []string{"metacopy=off", "redirect_dir=off"}},
		{name: "read-only keeps defaults", metacopy: true, metaDefault: true, redirDf: true, readOnly: true, want: nil},
		{name: "caller metacopy=on", metacopy: true, redirDf: true, opts: []string{"metacopy=on"}, want: []string{"metacopy=on"}},
		{name: "caller redirect_dir=on", metacopy: true, metaDefault: true, opts: []string{"redirect_dir=on"}, want: []string{"redirect_dir=on"}},
		{name: "metacopy=on unsupported", metacopy: false, opts: []string{"metacopy=on"}, wantErr: driver.ErrNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Driver{feat: features{metacopy: tc.metacopy, metacopyDefault: tc.metaDefault, redirectDefault: tc.redirDf}}
			got, err := d.copyUpOptions("A", slices.Clone(tc.opts), tc.readOnly)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("copyUpOptions = %v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("copyUpOptions = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestCopyUpOptionsKernelAccepts: the options the driver adds against
// kernel defaults are ones the kernel takes on a read-write mount.
func TestCopyUpOptionsKernelAccepts(t *testing.T) {
	d := newTestDriver(t, Options{})
	if !d.feat.metacopy {
		t.Skip("kernel overlayfs has no metacopy")
	}
	d.feat.metacopyDefault, d.feat.redirectDefault = true, true
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	path, err := d.Mount("B", driver.MountOpts{})
	if err != nil {
		t.Fatalf("Mount with metacopy=off,redirect_dir=off: %v", err)
	}
	m, ok := findMount(t, path)
	if !ok {
		t.Fatalf("%s not in mountinfo", path)
	}
	if hasOpt(m.superOpts, "metacopy=on") || hasOpt(m.superOpts, "redirect_dir=on") {
		t.Errorf("super options %v", m.superOpts)
	}
}

// TestCheckMountMode: CheckMountMode gives Mount's error for a request of
// the other read-only-ness, nothing otherwise, and leaves the count alone.
func TestCheckMountMode(t *testing.T) {
	d := newTestDriver(t, Options{})
	mustCreate(t, d, "A", "")
	mustCreate(t, d, "B", "A")
	if err := d.CheckMountMode("B", true); err != nil {
		t.Errorf("CheckMountMode of an unmounted layer = %v", err)
	}
	if _, err := d.Mount("B", driver.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckMountMode("B", false); err != nil {
		t.Errorf("CheckMountMode(read-write) of a read-write mount = %v", err)
	}
	err := d.CheckMountMode("B", true)
	if !errors.Is(err, driver.ErrLayerMounted) || !strings.Contains(err.Error(), "already mounted read-write") {
		t.Errorf("CheckMountMode(read-only) of a read-write mount = %v, want ErrLayerMounted", err)
	}
	if d.counts["B"] != 1 {
		t.Errorf("count %d, want 1", d.counts["B"])
	}
}
