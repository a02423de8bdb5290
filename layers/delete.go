package layers

import (
	"fmt"

	"github.com/stratafs/strata/driver"
)

// Delete removes layer ref: its files, its tar-split record and its
// record. A layer other layers sit on fails with driver.ErrLayerHasChildren
// and a mounted one with driver.ErrLayerMounted; neither changes anything.
// The record is flagged incomplete while the files go, so a crash half way
// leaves a layer the next read-write open finishes removing. Takes the
// write lock of layers.lock (and briefly mountpoints.lock).
func (s *Store) Delete(ref string) error {
	l, done, err := s.lookupLocked(ref, true)
	if err != nil {
		return err
	}
	defer done()

	if s.hasChildren(l.ID) {
		return fmt.Errorf("layer %s: %w", l.ID, driver.ErrLayerHasChildren)
	}
	if err := s.checkNotMounted(l.ID); err != nil {
		return err
	}

	l.setFlag(flagIncomplete, true)
	if err := s.save(); err != nil {
		return fmt.Errorf("layer %s: %w", l.ID, err)
	}
	if err := s.drv.Remove(l.ID); err != nil {
		// The record stays flagged: the next change to the store retries.
		return fmt.Errorf("layer %s: remove files: %w", l.ID, err)
	}
	if err := removeIfExists(s.tarSplitPath(l.ID)); err != nil {
		return fmt.Errorf("layer %s: %w", l.ID, err)
	}
	s.dropRecords(map[string]bool{l.ID: true})
	if err := s.save(); err != nil {
		return fmt.Errorf("layer %s: %w", l.ID, err)
	}
	s.log.Debug("layer deleted", "id", l.ID)
	return nil
}

// checkNotMounted fails with driver.ErrLayerMounted when layer id has
// users; a count left over from before a reboot is dropped. Caller holds
// the write lock of layers.lock; takes mountpoints.lock.
func (s *Store) checkNotMounted(id string) error {
	if err := s.lockMounts(); err != nil {
		return err
	}
	defer s.mountsLock.Unlock()

	byID, list, err := s.loadMounts()
	if err != nil {
		return err
	}
	m := byID[id]
	count, err := s.liveCount(m)
	if err != nil {
		return err
	}
	if count > 0 {
		return fmt.Errorf("layer %s (%d users): %w", id, count, driver.ErrLayerMounted)
	}
	if m != nil && m.Count > 0 {
		m.Count = 0
		return s.saveMounts(list)
	}
	return nil
}
