package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tarEntry is what a test checks of one exported entry.
type tarEntry struct {
	mode    int64
	content string
}

// readTarEntries reads every entry of an uncompressed tar.
func readTarEntries(t *testing.T, b []byte) map[string]tarEntry {
	t.Helper()
	out := map[string]tarEntry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading exported tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = tarEntry{mode: hdr.Mode, content: string(data)}
	}
}

// TestDiffAfterCopyUpThroughMount: a chmod of a lower file and a rename of
// a lower directory made through a read-write mount export with their
// data, whether the mount used metacopy/redirect_dir or not (with them the
// diff dir holds a metadata-only file and a redirect dir).
func TestDiffAfterCopyUpThroughMount(t *testing.T) {
	const passwd = "root:x:0:0:root:/root:/bin/sh\n"
	tests := []struct {
		name     string
		options  []string
		metacopy bool // the diff dir must show metacopy and redirect marks
	}{
		{name: "default mount", options: nil},
		{name: "metacopy=on", options: []string{"metacopy=on"}, metacopy: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.metacopy {
				if _, err := os.Stat("/sys/module/overlay/parameters/metacopy"); err != nil {
					t.Skip("kernel overlayfs has no metacopy")
				}
			}
			s, drv := overlayStore(t)
			base := copyUpBaseTar(passwd)
			if _, err := s.Put(PutOptions{ID: "base"}, bytes.NewReader(base)); err != nil {
				t.Fatal(err)
			}
			top, err := s.Create(CreateOptions{ID: "meta", Parent: "base"})
			if err != nil {
				t.Fatal(err)
			}
			mnt, err := s.Mount(top.ID, MountOptions{Options: tc.options})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(mnt, "etc/passwd"), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mv", filepath.Join(mnt, "dir"), filepath.Join(mnt, "dir2")).CombinedOutput(); err != nil {
				t.Fatalf("mv: %v: %s", err, out)
			}
			if _, err := s.Unmount(top.ID, true); err != nil {
				t.Fatal(err)
			}

			diffDir, err := drv.DiffPath(top.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, metaErr := unix.Getxattr(filepath.Join(diffDir, "etc/passwd"), "trusted.overlay.metacopy", nil)
			_, redirErr := unix.Getxattr(filepath.Join(diffDir, "dir2"), "trusted.overlay.redirect", nil)
			if gotMarks := metaErr == nil && redirErr == nil; gotMarks != tc.metacopy {
				t.Fatalf("diff dir metacopy mark: %v, redirect mark: %v; want marks %v", metaErr, redirErr, tc.metacopy)
			}

			var buf bytes.Buffer
			src, err := s.Diff(top.ID, &buf)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if src != DiffFromDirectory {
				t.Errorf("Diff source %s, want %s", src, DiffFromDirectory)
			}
			entries := readTarEntries(t, buf.Bytes())
			if e, ok := entries["etc/passwd"]; !ok || e.content != passwd || e.mode != 0o600 {
				t.Errorf("etc/passwd in tar = %+v (present %v), want %q mode 0600", e, ok, passwd)
			}
			if e, ok := entries["dir2/a"]; !ok || e.content != "aaa" {
				t.Errorf("dir2/a in tar = %+v (present %v), want \"aaa\"", e, ok)
			}
			if _, ok := entries[".wh.dir"]; !ok {
				t.Errorf("tar lacks .wh.dir: %v", entryNames(entries))
			}

			changes, err := s.Changes(top.ID)
			if err != nil {
				t.Fatalf("Changes: %v", err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, c.Kind.String()+" "+c.Path)
			}
			want := []string{"D /dir", "A /dir2", "A /dir2/a", "C /etc", "C /etc/passwd"}
			if !slices.Equal(got, want) {
				t.Errorf("Changes = %v, want %v", got, want)
			}

			assertNoViewLeft(t, filepath.Dir(filepath.Dir(diffDir)))
		})
	}
}

// copyUpBaseTar is the parent layer: etc/passwd and dir/a.
func copyUpBaseTar(passwd string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range []struct {
		name, content string
		dir           bool
	}{
		{name: "etc/", dir: true}, {name: "etc/passwd", content: passwd},
		{name: "dir/", dir: true}, {name: "dir/a", content: "aaa"},
	} {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.content))}
		if e.dir {
			hdr.Mode, hdr.Typeflag, hdr.Size = 0o755, tar.TypeDir, 0
		}
		_ = tw.WriteHeader(hdr)
		_, _ = io.WriteString(tw, e.content)
	}
	_ = tw.Close()
	return b.Bytes()
}

func entryNames(m map[string]tarEntry) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// assertNoViewLeft checks that no read-only view mount point is left in
// the driver home and that nothing below it is mounted but home/*/merged.
func assertNoViewLeft(t *testing.T, home string) {
	t.Helper()
	ents, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".view-") {
			t.Errorf("view mount point %s left in the home", e.Name())
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(home+"/.view-")) {
		t.Errorf("a view is still mounted below %s", home)
	}
}
