package archive

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/testutil"
)

// TestOverlayMarksWithoutView: a metacopy file or a redirect dir cannot
// be exported (or, for a redirect dir, listed) from the diff dir alone;
// without a merged view the error wraps driver.ErrNotSupported and names
// the path instead of writing holes or an empty directory.
func TestOverlayMarksWithoutView(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name, path, xattr, value string
		dir, changesFail         bool
	}{
		{name: "metacopy file", path: "passwd", xattr: "trusted.overlay.metacopy", value: ""},
		{name: "redirect dir", path: "dir2", xattr: "trusted.overlay.redirect", value: "/dir", dir: true, changesFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, tc.path)
			var err error
			if tc.dir {
				err = os.Mkdir(p, 0o755)
			} else {
				err = os.WriteFile(p, make([]byte, 11), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Lsetxattr(p, tc.xattr, []byte(tc.value), 0); err != nil {
				t.Skipf("cannot set %s here: %v", tc.xattr, err)
			}
			err = Export(root, io.Discard, ExportOptions{})
			if !errors.Is(err, driver.ErrNotSupported) || !strings.Contains(err.Error(), `"`+tc.path+`"`) {
				t.Errorf("Export = %v, want ErrNotSupported naming %q", err, tc.path)
			}
			_, err = Changes(root, nil)
			if tc.changesFail && (!errors.Is(err, driver.ErrNotSupported) || !strings.Contains(err.Error(), `"`+tc.path+`"`)) {
				t.Errorf("Changes = %v, want ErrNotSupported naming %q", err, tc.path)
			}
			if !tc.changesFail && err != nil {
				t.Errorf("Changes = %v, want success", err)
			}
		})
	}
}
