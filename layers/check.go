package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stratafs/strata/driver"
)

// Problem is one inconsistency Check found, or one a store repaired by
// itself when it opened (see Store.Recovered).
type Problem struct {
	// Kind is one of: "incomplete" (a record a crash left flagged),
	// "missing-files" (a record whose driver dir is gone),
	// "orphan-dir" (a driver dir with no record), "orphan-tar-split",
	// "no-records" (layers.json has no records but layer dirs exist:
	// nothing is deleted), "dangling-link" (a short link to no layer
	// dir), "driver-repair" (what the driver repaired at open: a short
	// link recreated, a dead process's staging dir removed),
	// "stale-mount" (a mount count for a layer that is not mounted or not
	// known), "leaked-mount" (a layer mounted with no count: its mounter
	// died before saving the count), "corrupt-mount-counts"
	// (mountpoints.json cannot be read).
	Kind string
	// ID is the layer concerned; Path the file or dir, when there is one.
	ID, Path string
	// Detail says more, when there is more to say: what was done, or why
	// nothing was.
	Detail string
	// Repaired tells whether it was fixed.
	Repaired bool
	// AtOpen tells that the store (or its driver) fixed it by itself
	// while opening or taking its write lock, before any Check.
	AtOpen bool
}

func (p Problem) String() string {
	parts := []string{p.Kind}
	for _, s := range []string{p.ID, p.Path} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if p.Detail != "" {
		parts = append(parts, "("+p.Detail+")")
	}
	switch {
	case p.AtOpen:
		parts = append(parts, "(repaired at open)")
	case p.Repaired:
		parts = append(parts, "(repaired)")
	}
	return strings.Join(parts, " ")
}

// maxRecovered bounds the list Recovered keeps.
const maxRecovered = 1000

// noteRecovered records and logs a repair the store made by itself.
// Caller holds Store.mu.
func (s *Store) noteRecovered(p Problem) {
	p.Repaired, p.AtOpen = true, true
	s.log.Info("repaired crash leftover", "kind", p.Kind, "id", p.ID, "detail", p.Detail)
	if len(s.recovered) < maxRecovered {
		s.recovered = append(s.recovered, p)
	}
}

// recoveringDriver is met by drivers that repair their own files when
// they start (the overlay driver rebuilds missing short links); the
// repairs are described one a string.
type recoveringDriver interface{ Recovered() []string }

// Recovered returns what this store repaired by itself: the layers a
// crash left half made or half deleted that its read-write open (or a
// later write lock) removed, and what the driver reports it repaired when
// it started. Each Problem has Repaired and AtOpen set. Check includes
// them in its report.
func (s *Store) Recovered() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recoveredLocked()
}

// recoveredLocked is Recovered; caller holds Store.mu.
func (s *Store) recoveredLocked() []Problem {
	out := slices.Clone(s.recovered)
	if d, ok := s.drv.(recoveringDriver); ok {
		for _, what := range d.Recovered() {
			out = append(out, Problem{Kind: "driver-repair", Detail: what, Repaired: true, AtOpen: true})
		}
	}
	return out
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
// A read-write Open already removes the layers flagged incomplete; Check
// reports what it removed (see Recovered) first, marked repaired at open.
// A read-only store reports them as found.
//
// Check never deletes layer dirs or tar-split files that have no record
// (see lostRecord): it reports them, and an emptied layers.json as one
// problem.
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

	problems := s.recoveredLocked()
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

// lostRecord explains why an orphan dir or tar-split file is reported and
// not deleted: strata records a layer before it makes its files and
// removes the record last, so files without a record are not crash
// leftovers but a layer whose record was lost (a damaged or restored
// layers.json), which deleting would lose for good.
const lostRecord = "no record of it: its record may have been lost from layers.json; " +
	"not deleting it: restore layers.json, or remove it by hand if it is not needed"

// checkFiles finds driver dirs, short links and tar-split files of no
// record. Caller holds layers.lock (the write lock with repair) and
// Store.mu.
func (s *Store) checkFiles(repair bool) ([]Problem, error) {
	known := map[string]bool{}
	for _, l := range s.layers {
		known[l.ID] = true
	}
	var problems []Problem
	noRecords := false // layer dirs but no records: delete nothing
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
		var orphans []string
		for _, e := range entries {
			id := e.Name()
			// "staging" holds the driver's layers being applied (overlay's
			// Stage); the driver removes what a crash left there.
			if !e.IsDir() || id == "l" || id == "staging" || driver.ValidateID(id) != nil || known[id] {
				continue
			}
			orphans = append(orphans, id)
		}
		if len(s.layers) == 0 && len(orphans) > 0 {
			// An emptied layers.json (a hand edit, a bad restore) is
			// no reason to delete every layer.
			noRecords = true
			problems = append(problems, Problem{Kind: "no-records", Path: s.layersPath(),
				Detail: fmt.Sprintf("layers.json has no records but %d layer directories exist; not deleting them: restore layers.json", len(orphans))})
			orphans = nil
		}
		for _, id := range orphans {
			if mounted, err := s.drv.Mounted(id); err == nil && mounted {
				problems = append(problems, Problem{Kind: "orphan-dir", ID: id, Path: filepath.Join(home, id),
					Detail: "mounted, so in use; not deleting it: unmount it first"})
				continue
			}
			problems = append(problems, Problem{Kind: "orphan-dir", ID: id, Path: filepath.Join(home, id),
				Detail: lostRecord})
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
		if known[id] || noRecords {
			continue
		}
		problems = append(problems, Problem{Kind: "orphan-tar-split", ID: id, Path: path, Detail: lostRecord})
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
	var problems []Problem
	if errors.Is(err, driver.ErrStoreCorrupt) {
		p, rebuilt, err := s.rebuildMounts(repair, err)
		if err != nil || !repair {
			return []Problem{p}, err
		}
		problems, list = append(problems, p), rebuilt
	} else if err != nil {
		return nil, err
	}
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

// rebuildMounts handles a mountpoints.json that cannot be read (loadErr).
// Without repair it only reports it. With repair (caller holds the write
// lock of mountpoints.lock) it renames the file to
// mountpoints.json.corrupt-<unix time>, gives each layer that is mounted
// now a count of 1 and saves the new counts.
func (s *Store) rebuildMounts(repair bool, loadErr error) (Problem, []*mountPoint, error) {
	p := Problem{Kind: "corrupt-mount-counts", Path: s.mountsPath(), Detail: loadErr.Error()}
	if !repair {
		return p, nil, nil
	}
	aside := fmt.Sprintf("%s.corrupt-%d", s.mountsPath(), time.Now().Unix())
	if err := os.Rename(s.mountsPath(), aside); err != nil {
		return p, nil, fmt.Errorf("set aside corrupt mount counts: %w", err)
	}
	// The mount point is known only for a driver with the overlay
	// layout; with another, a mounted layer stays without a count (and
	// shows as a leaked mount).
	var list []*mountPoint
	h, ok := s.drv.(homer)
	for _, l := range s.layers {
		if !ok {
			break
		}
		if s.hidden[l.ID] {
			continue
		}
		if mounted, err := s.drv.Mounted(l.ID); err == nil && mounted {
			list = append(list, &mountPoint{ID: l.ID, Path: filepath.Join(h.Home(), l.ID, "merged"), Count: 1})
		}
	}
	if err := s.saveMounts(list); err != nil {
		return p, nil, err
	}
	p.Detail = fmt.Sprintf("moved to %s; %d mounted layers now count 1 user each", aside, len(list))
	p.Repaired = true
	s.log.Info("rebuilt corrupt mount counts", "set-aside", aside, "mounted", len(list))
	return p, list, nil
}
