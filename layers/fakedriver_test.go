package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/stratafs/strata/driver"
)

// fakeDriver is a directory-based driver for unprivileged tests. It keeps
// its state on disk (a "mounted" marker instead of a mount) so that a second
// process sees it too. ApplyDiff reads the tar up to its end-of-archive
// only, leaving the rest of the stream to the store, as archive.Apply does.
type fakeDriver struct {
	home string
}

func newFakeDriver(home string) *fakeDriver {
	if err := os.MkdirAll(home, 0o700); err != nil {
		panic(err)
	}
	return &fakeDriver{home: home}
}

func (d *fakeDriver) dir(id string) string { return filepath.Join(d.home, id) }

func (d *fakeDriver) Name() string { return "fake" }

func (d *fakeDriver) Create(id, parent string, _ *driver.CreateOpts) error {
	return d.create(id, parent, false)
}

func (d *fakeDriver) CreateReadWrite(id, parent string, _ *driver.CreateOpts) error {
	return d.create(id, parent, true)
}

func (d *fakeDriver) create(id, parent string, rw bool) error {
	if err := driver.ValidateID(id); err != nil {
		return err
	}
	if parent != "" && !d.Exists(parent) {
		return fmt.Errorf("fake: parent %s: %w", parent, driver.ErrLayerUnknown)
	}
	if err := os.Mkdir(d.dir(id), 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("fake: layer %s: %w", id, driver.ErrLayerExists)
		}
		return err
	}
	if err := os.Mkdir(filepath.Join(d.dir(id), "diff"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir(id), "parent"), []byte(parent), 0o600); err != nil {
		return err
	}
	if rw {
		return os.WriteFile(filepath.Join(d.dir(id), "rw"), nil, 0o600)
	}
	return nil
}

func (d *fakeDriver) Remove(id string) error { return os.RemoveAll(d.dir(id)) }

func (d *fakeDriver) Mount(id string, opts driver.MountOpts) (string, error) {
	for cur := id; cur != ""; {
		parent, err := os.ReadFile(filepath.Join(d.dir(cur), "parent"))
		if err != nil {
			return "", fmt.Errorf("fake: layer %s: %w", cur, driver.ErrLayerUnknown)
		}
		cur = string(parent)
	}
	mode := "rw"
	if opts.ReadOnly {
		mode = "ro"
	}
	if err := os.WriteFile(filepath.Join(d.dir(id), "mounted"), []byte(mode), 0o600); err != nil {
		return "", err
	}
	return filepath.Join(d.dir(id), "merged"), nil
}

func (d *fakeDriver) Unmount(id string) error {
	err := os.Remove(filepath.Join(d.dir(id), "mounted"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// mountMode returns "ro" or "rw" for a mounted layer, "" otherwise.
func (d *fakeDriver) mountMode(id string) string {
	b, _ := os.ReadFile(filepath.Join(d.dir(id), "mounted"))
	return string(b)
}

func (d *fakeDriver) Mounted(id string) (bool, error) {
	_, err := os.Stat(filepath.Join(d.dir(id), "mounted"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d *fakeDriver) Exists(id string) bool {
	_, err := os.Stat(d.dir(id))
	return err == nil
}

// ApplyDiff reads tar headers and contents up to the end-of-archive and
// reports the owners. An entry named "fail-apply" makes it fail.
func (d *fakeDriver) ApplyDiff(id string, opts driver.ApplyDiffOpts) (driver.ApplyResult, error) {
	if !d.Exists(id) {
		return driver.ApplyResult{}, fmt.Errorf("fake: layer %s: %w", id, driver.ErrLayerUnknown)
	}
	uids, gids := map[uint32]bool{}, map[uint32]bool{}
	tr := tar.NewReader(opts.Diff)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return driver.ApplyResult{}, fmt.Errorf("fake apply: %w", err)
		}
		if hdr.Name == "fail-apply" {
			return driver.ApplyResult{}, fmt.Errorf("fake apply: entry %q: %w", hdr.Name, driver.ErrInvalidLayerData)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return driver.ApplyResult{}, fmt.Errorf("fake apply: entry %q: %w", hdr.Name, err)
		}
		uids[uint32(hdr.Uid)] = true
		gids[uint32(hdr.Gid)] = true
	}
	return driver.ApplyResult{UIDs: sortedKeys(uids), GIDs: sortedKeys(gids)}, nil
}

func sortedKeys(m map[uint32]bool) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (d *fakeDriver) DiffPath(id string) (string, error) {
	return filepath.Join(d.dir(id), "diff"), nil
}

func (d *fakeDriver) Status() []driver.StatusPair { return nil }

func (d *fakeDriver) Cleanup() error { return nil }
