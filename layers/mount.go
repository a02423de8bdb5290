package layers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stratafs/strata/driver"
)

// MountOptions are the options of Mount.
type MountOptions struct {
	// ReadOnly mounts without an upper directory. Read-only layers are
	// always mounted so.
	ReadOnly bool
	// MountLabel overrides the layer's SELinux mount label.
	MountLabel string
	// Options are extra mount options such as "nodev".
	Options []string
}

// mountPoint is one record of RR/overlay-layers/mountpoints.json: how many
// users, in every process, a layer's mount has.
type mountPoint struct {
	ID    string `json:"id"`
	Path  string `json:"path"`
	Count int    `json:"count"`
}

func (s *Store) mountsPath() string { return filepath.Join(s.mountDir, "mountpoints.json") }

// repairHint ends the error for a mountpoints.json that cannot be read.
const repairHint = "run strata check --repair to set it aside and rebuild the counts from the mount table"

// loadMounts reads mountpoints.json; a missing or empty file has no
// mounts. Caller holds mountpoints.lock.
func (s *Store) loadMounts() (map[string]*mountPoint, []*mountPoint, error) {
	path := s.mountsPath()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("mount counts: %w", err)
	}
	var list []*mountPoint
	if len(data) > 0 {
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, nil, fmt.Errorf("mount counts file %s: %w: %v (%s)", path, driver.ErrStoreCorrupt, err, repairHint)
		}
	}
	byID := make(map[string]*mountPoint, len(list))
	for i, m := range list {
		if m == nil || driver.ValidateID(m.ID) != nil || m.Count < 0 {
			return nil, nil, fmt.Errorf("mount counts file %s: record %d is malformed: %w (%s)", path, i, driver.ErrStoreCorrupt, repairHint)
		}
		byID[m.ID] = m
	}
	return byID, list, nil
}

// saveMounts records a write in mountpoints.lock and replaces
// mountpoints.json, leaving out layers with no users. Caller holds the
// write lock of mountpoints.lock.
func (s *Store) saveMounts(list []*mountPoint) error {
	kept := []*mountPoint{}
	for _, m := range list {
		if m.Count > 0 {
			kept = append(kept, m)
		}
	}
	data, err := json.Marshal(kept)
	if err != nil {
		return fmt.Errorf("mount counts: %w", err)
	}
	if _, err := s.mountsLock.RecordWrite(); err != nil {
		return fmt.Errorf("mount counts: %w", err)
	}
	if err := writeFileSynced(s.mountsPath(), data, 0o600); err != nil {
		return fmt.Errorf("mount counts: save: %w", err)
	}
	return nil
}

// liveCount returns m's count, or 0 when the layer is not actually mounted
// (the count survived a reboot or a lazy unmount by someone else).
func (s *Store) liveCount(m *mountPoint) (int, error) {
	if m == nil || m.Count == 0 {
		return 0, nil
	}
	mounted, err := s.drv.Mounted(m.ID)
	if errors.Is(err, driver.ErrLayerUnknown) {
		mounted, err = false, nil // its files are gone, so is any mount
	}
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", m.ID, err)
	}
	if !mounted {
		s.log.Debug("mount count of an unmounted layer reset", "id", m.ID, "count", m.Count, "path", m.Path)
		return 0, nil
	}
	return m.Count, nil
}

// lockMounts takes the write lock of mountpoints.lock.
func (s *Store) lockMounts() error {
	if !s.mountsLock.Writable() {
		return fmt.Errorf("mount counts %s: %w", s.mountsLock.Path(), driver.ErrReadOnlyStore)
	}
	s.mountsLock.Lock()
	return nil
}

// checkChain fails when a layer below l has lost its record or its files,
// naming that layer, so a mount does not fail somewhere in the kernel.
// Caller holds layers.lock and Store.mu.
func (s *Store) checkChain(l *Layer) error {
	for cur := l; ; {
		if !s.drv.Exists(cur.ID) {
			if cur == l {
				return fmt.Errorf("layer %s: files missing: %w", cur.ID, driver.ErrLayerUnknown)
			}
			return fmt.Errorf("layer %s: files of layer %s below it are missing: %w", l.ID, cur.ID, driver.ErrLayerUnknown)
		}
		if cur.Parent == "" {
			return nil
		}
		parent, ok := s.byID[cur.Parent] // hidden layers are not in byID
		if !ok {
			return fmt.Errorf("layer %s: layer %s below it is not known: %w", l.ID, cur.Parent, driver.ErrLayerUnknown)
		}
		cur = parent
	}
}

// mountModeChecker is met by drivers that can tell whether a layer's
// mount has the read-only-ness a new request asks for (the overlay driver
// can); the error wraps driver.ErrLayerMounted.
type mountModeChecker interface {
	CheckMountMode(id string, readOnly bool) error
}

// Mount mounts layer ref with its parents and returns the mount point. A
// layer already mounted (by any process) gets one more user and the same
// path, provided it is mounted read-only when a read-only mount is asked
// for and read-write otherwise: a request of the other kind fails with the
// driver's error wrapping driver.ErrLayerMounted, and the count stays.
// Takes the read lock of layers.lock, then the write lock of
// mountpoints.lock.
func (s *Store) Mount(ref string, opts MountOptions) (string, error) {
	done, err := s.startReading()
	if err != nil {
		return "", err
	}
	defer done()

	l, err := s.lookup(ref)
	if err != nil {
		return "", err
	}
	if err := s.lockMounts(); err != nil {
		return "", err
	}
	defer s.mountsLock.Unlock()

	byID, list, err := s.loadMounts()
	if err != nil {
		return "", err
	}
	m := byID[l.ID]
	count, err := s.liveCount(m)
	if err != nil {
		return "", err
	}
	readOnly := opts.ReadOnly || l.ReadOnly
	if count > 0 {
		if c, ok := s.drv.(mountModeChecker); ok {
			if err := c.CheckMountMode(l.ID, readOnly); err != nil {
				return "", err // it names the layer and how it is mounted
			}
		}
		m.Count++
		if err := s.saveMounts(list); err != nil {
			return "", fmt.Errorf("layer %s: %w", l.ID, err)
		}
		return m.Path, nil
	}

	if err := s.checkChain(l); err != nil {
		return "", err
	}
	label := opts.MountLabel
	if label == "" {
		label = l.MountLabel
	}
	path, err := s.drv.Mount(l.ID, driver.MountOpts{
		ReadOnly:   readOnly,
		MountLabel: label,
		Options:    opts.Options,
	})
	if err != nil {
		return "", fmt.Errorf("layer %s: mount: %w", l.ID, err)
	}
	if m == nil {
		m = &mountPoint{ID: l.ID}
		list = append(list, m)
	}
	m.Path, m.Count = path, 1
	if err := s.saveMounts(list); err != nil {
		if uerr := s.drv.Unmount(l.ID); uerr != nil {
			s.log.Warn("cannot unmount after failing to record the mount", "id", l.ID, "err", uerr)
		}
		return "", fmt.Errorf("layer %s: %w", l.ID, err)
	}
	return path, nil
}

// Unmount drops one user of layer ref's mount (all of them with force) and
// unmounts it when none is left; it reports whether the layer is still
// mounted. A layer with no users fails with driver.ErrLayerNotMounted.
// Takes the read lock of layers.lock, then the write lock of
// mountpoints.lock.
func (s *Store) Unmount(ref string, force bool) (bool, error) {
	done, err := s.startReading()
	if err != nil {
		return false, err
	}
	defer done()

	l, err := s.lookup(ref)
	if err != nil {
		return false, err
	}
	if err := s.lockMounts(); err != nil {
		return false, err
	}
	defer s.mountsLock.Unlock()

	byID, list, err := s.loadMounts()
	if err != nil {
		return false, err
	}
	m := byID[l.ID]
	count, err := s.liveCount(m)
	if err != nil {
		return false, err
	}
	if count == 0 {
		if m != nil && m.Count > 0 {
			m.Count = 0
			if err := s.saveMounts(list); err != nil {
				return false, fmt.Errorf("layer %s: %w", l.ID, err)
			}
		}
		return false, fmt.Errorf("layer %s: %w", l.ID, driver.ErrLayerNotMounted)
	}

	if count > 1 && !force {
		m.Count--
		if err := s.saveMounts(list); err != nil {
			return true, fmt.Errorf("layer %s: %w", l.ID, err)
		}
		return true, nil
	}
	if err := s.drv.Unmount(l.ID); err != nil {
		return true, fmt.Errorf("layer %s: unmount: %w", l.ID, err)
	}
	m.Count = 0
	if err := s.saveMounts(list); err != nil {
		return false, fmt.Errorf("layer %s: %w", l.ID, err)
	}
	return false, nil
}

// MountCount returns how many users layer ref's mount has in all
// processes; 0 when it is not mounted. Takes the read locks of layers.lock
// and mountpoints.lock.
func (s *Store) MountCount(ref string) (int, error) {
	done, err := s.startReading()
	if err != nil {
		return 0, err
	}
	defer done()

	l, err := s.lookup(ref)
	if err != nil {
		return 0, err
	}
	s.mountsLock.RLock()
	defer s.mountsLock.RUnlock()
	byID, _, err := s.loadMounts()
	if err != nil {
		return 0, err
	}
	return s.liveCount(byID[l.ID])
}
