package layers

import (
	"fmt"

	"github.com/stratafs/strata/archive"
)

// Changes lists the paths layer ref adds, modifies or deletes compared
// with its parent chain, sorted by path. Takes the read lock of
// layers.lock only while looking the layer and its parents up.
func (s *Store) Changes(ref string) ([]archive.Change, error) {
	src, err := s.exportSourceOf(ref, true)
	if err != nil {
		return nil, err
	}
	view, release := s.mergedViewOf(src.layer.ID)
	defer release()
	changes, err := archive.ChangesWith(src.diffDir, src.lowers, archive.ChangesOptions{MergedView: view})
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", src.layer.ID, err)
	}
	return changes, nil
}

// DiffSize returns the bytes the regular files of layer ref's diff dir
// use, each hardlinked file counted once; this is what the layer adds to
// the store, not the size of its tar (that is Layer.UncompressedSize).
func (s *Store) DiffSize(ref string) (int64, error) {
	src, err := s.exportSourceOf(ref, false)
	if err != nil {
		return 0, err
	}
	size, err := archive.DirSize(src.diffDir)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", src.layer.ID, err)
	}
	return size, nil
}
