package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratafs/strata/driver"
)

// Problem is one inconsistency Check found.
type Problem struct {
	// Kind is one of: "incomplete" (a record a crash left flagged),
	// "missing-files" (a record whose driver dir is gone),
	// "orphan-dir" (a driver dir with no record), "orphan-tar-split",
	// "dangling-link" (a short link to no layer dir), "stale-mount" (a
	// mount count for a layer that is not mounted or not known),
	// "leaked-mount" (a layer mounted with no count: its mounter died
	// before saving the count).
	Kind string
	// ID is the layer concerned; Path the file or dir, when there is one.
	ID, Path string
	// Repaired tells whether Check fixed it.
	Repaired bool
}

func (p Problem) String() string {
	s := p.Kind + " " + p.ID
	if p.Path != "" {
		s += " " + p.Path
	}
	if p.Repaired {
		s += " (repaired)"
	}
	return s
}

// homer is met by drivers that keep one dir per layer below a home dir,
// in the overlay layout of DESIGN.md (the overlay driver does).
type homer interface{ Home() string }

// Check looks for the inconsistencies a crash or a hand edit leaves:
// records without files, files without records, tar-split files and short
// links of no layer, stale mount counts. With repair it removes what has
// no record, drops the records (and the layers above them) whose files are
// gone and resets stale mount counts. Check takes the write lock of
// layers.lock (read lock without repair) and then mountpoints.lock.
//
// A read-write Open already removes the layers flagged incomplete, so on
// such a store Check never reports them; a read-only store reports them.
func (s *Store) Check(repair bool) ([]Problem, error) {
	var done func()
	var err error
	if repair {
		done, err = s.startWriting()
	} else {
		done, err = s.startReading()
	}
	if err != nil {
		return nil, err
	}
	defer done()

	var problems []Problem
	for _, l := range s.layers {
		if l.incomplete() {
			problems = append(problems, Problem{Kind: "incomplete", ID: l.ID})
		}
	}

	// Records whose files are gone, and the layers above them.
	gone := map[string]bool{}
	for _, l := range s.layers {
		if !l.incomplete() && !s.drv.Exists(l.ID) {
			gone[l.ID] = true
		}
	}
	for grew := len(gone) > 0; grew; {
		grew = false
		for _, l := range s.layers {
			if !gone[l.ID] && gone[l.Parent] {
				gone[l.ID] = true
				grew = true
			}
		}
	}
	for _, l := range s.layers {
		if gone[l.ID] {
			problems = append(problems, Problem{Kind: "missing-files", ID: l.ID, Repaired: repair})
		}
	}
	if repair && len(gone) > 0 {
		for id := range gone {
			if err := s.drv.Remove(id); err != nil {
				return problems, fmt.Errorf("layer %s: %w", id, err)
			}
			if err := removeIfExists(s.tarSplitPath(id)); err != nil {
				return problems, err
			}
		}
		s.dropRecords(gone)
		if err := s.save(); err != nil {
			return problems, err
		}
	}

	orphans, err := s.checkFiles(repair)
	problems = append(problems, orphans...)
	if err != nil {
		return problems, err
	}
	mounts, err := s.checkMounts(repair)
	problems = append(problems, mounts...)
	return problems, err
}

// checkFiles finds driver dirs, short links and tar-split files of no
// record. Caller holds layers.lock (the write lock with repair) and
// Store.mu.
func (s *Store) checkFiles(repair bool) ([]Problem, error) {
	known := map[string]bool{}
	for _, l := range s.layers {
		known[l.ID] = true
	}
	var problems []Problem
	add := func(kind, id, path string, fix func() error) error {
		p := Problem{Kind: kind, ID: id, Path: path}
		if repair {
			if err := fix(); err != nil {
				return fmt.Errorf("repair %s: %w", p, err)
			}
			p.Repaired = true
		}
		problems = append(problems, p)
		return nil
	}

	if h, ok := s.drv.(homer); ok {
		home := h.Home()
		entries, err := os.ReadDir(home)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			id := e.Name()
			// "staging" holds the driver's layers being applied (overlay's
			// Stage); the driver removes what a crash left there.
			if !e.IsDir() || id == "l" || id == "staging" || driver.ValidateID(id) != nil || known[id] {
				continue
			}
			err := add("orphan-dir", id, filepath.Join(home, id), func() error { return s.drv.Remove(id) })
			if err != nil {
				return problems, err
			}
		}
		links, err := os.ReadDir(filepath.Join(home, "l"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return problems, err
		}
		for _, e := range links {
			link := filepath.Join(home, "l", e.Name())
			target, err := os.Readlink(link)
			if err != nil {
				continue
			}
			id := strings.TrimSuffix(strings.TrimPrefix(target, "../"), "/diff")
			if _, err := os.Stat(filepath.Join(home, id)); err == nil {
				continue
			}
			if err := add("dangling-link", id, link, func() error { return removeIfExists(link) }); err != nil {
				return problems, err
			}
		}
	}

	splits, err := filepath.Glob(filepath.Join(s.layerDir, "*.tar-split.gz"))
	if err != nil {
		return problems, err
	}
	sort.Strings(splits)
	for _, path := range splits {
		id := strings.TrimSuffix(filepath.Base(path), ".tar-split.gz")
		if known[id] {
			continue
		}
		if err := add("orphan-tar-split", id, path, func() error { return removeIfExists(path) }); err != nil {
			return problems, err
		}
	}
	return problems, nil
}

// checkMounts finds mount counts of layers that are not mounted or not
// known. Caller holds layers.lock and Store.mu; it takes mountpoints.lock.
func (s *Store) checkMounts(repair bool) ([]Problem, error) {
	if repair {
		if err := s.lockMounts(); err != nil {
			return nil, err
		}
		defer s.mountsLock.Unlock()
	} else {
		s.mountsLock.RLock()
		defer s.mountsLock.RUnlock()
	}
	_, list, err := s.loadMounts()
	if err != nil {
		return nil, err
	}
	var problems []Problem
	for _, m := range list {
		if m.Count == 0 {
			continue
		}
		_, known := s.byIDAll(m.ID)
		mounted, err := s.drv.Mounted(m.ID)
		if known && err == nil && mounted {
			continue
		}
		problems = append(problems, Problem{Kind: "stale-mount", ID: m.ID, Path: m.Path, Repaired: repair})
		m.Count = 0
	}
	// Mounted with no count: a process died between mounting and saving
	// the count. Nobody can unmount it through the store, so it leaks.
	counted := map[string]bool{}
	for _, m := range list {
		if m.Count > 0 {
			counted[m.ID] = true
		}
	}
	for _, l := range s.layers {
		if counted[l.ID] {
			continue
		}
		if mounted, err := s.drv.Mounted(l.ID); err != nil || !mounted {
			continue
		}
		p := Problem{Kind: "leaked-mount", ID: l.ID}
		if repair {
			if err := s.drv.Unmount(l.ID); err != nil {
				return problems, fmt.Errorf("layer %s: unmount leaked mount: %w", l.ID, err)
			}
			p.Repaired = true
		}
		problems = append(problems, p)
	}
	if repair && len(problems) > 0 {
		if err := s.saveMounts(list); err != nil {
			return problems, err
		}
	}
	return problems, nil
}
