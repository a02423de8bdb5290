// Package layers is strata's layer store: the records of layers.json, the
// pipeline that turns a layer blob into a driver layer, and the mount counts
// shared by every process using the store.
//
// Lock discipline. layers.json is guarded by R/overlay-layers/layers.lock
// and the mount counts by RR/overlay-layers/mountpoints.lock (both
// lockfile.LockFile, shared with other processes). Every public method takes
// the locks it needs itself: the read lock of layers.lock for lookups, its
// write lock for changes, and mountpoints.lock inside layers.lock when it
// touches mounts (never the other order). Under either lock the method
// reloads layers.json when the lock's last-write token differs from the one
// the store loaded, so a change made by another process is seen without
// reopening. Store.mu, taken after the file lock, guards the in-memory copy
// between goroutines of this process.
package layers

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/google/renameio/v2"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/lockfile"
)

// DefaultMaxDiffSize caps the uncompressed bytes of one Put when
// Options.MaxDiffSize is 0.
const DefaultMaxDiffSize int64 = 1 << 40

// Options configure Open.
type Options struct {
	// GraphRoot holds layer content and metadata (R); RunRoot holds state
	// that a reboot clears (RR). Both are required.
	GraphRoot, RunRoot string
	// Driver stores the layers' files; required. The store does not shut
	// it down: whoever made it calls Cleanup.
	Driver driver.Driver
	// ReadOnly opens the store for lookups only: changes fail with
	// driver.ErrReadOnlyStore and interrupted layers are hidden, not
	// removed.
	ReadOnly bool
	// Logger receives debug detail and warnings; nil discards them.
	Logger *slog.Logger
	// MaxDiffSize caps the uncompressed bytes of one Put; 0 means
	// DefaultMaxDiffSize.
	MaxDiffSize int64
}

// Store is a layer store. It is safe for use by several goroutines, and by
// several processes that open the same roots.
type Store struct {
	graphRoot, runRoot string
	layerDir           string // R/overlay-layers
	mountDir           string // RR/overlay-layers
	drv                driver.Driver
	readOnly           bool
	log                *slog.Logger
	maxDiffSize        int64

	lock       *lockfile.LockFile // layers.lock
	mountsLock *lockfile.LockFile // mountpoints.lock

	// mu guards the fields below; taken after lock.
	mu        sync.Mutex
	loaded    bool
	lastWrite lockfile.LastWrite
	layers    []*Layer // layers.json order
	byID      map[string]*Layer
	byName    map[string]*Layer
	// hidden holds the layers flagged incomplete and every layer above
	// one: lookups do not see them.
	hidden map[string]bool
	// recovered lists what this store repaired by itself (see Recovered).
	recovered []Problem
}

// Open opens (creating when missing, unless read-only) the layer store
// below opts.GraphRoot and opts.RunRoot. A read-write open first removes
// every layer a crash left half created or half deleted, with its children.
func Open(opts Options) (*Store, error) {
	if opts.Driver == nil {
		return nil, fmt.Errorf("layer store: no driver: %w", driver.ErrInvalidArgument)
	}
	if opts.GraphRoot == "" || opts.RunRoot == "" {
		return nil, fmt.Errorf("layer store: graph root and run root are required: %w", driver.ErrInvalidArgument)
	}
	graphRoot, err := filepath.Abs(opts.GraphRoot)
	if err != nil {
		return nil, err
	}
	runRoot, err := filepath.Abs(opts.RunRoot)
	if err != nil {
		return nil, err
	}
	s := &Store{
		graphRoot:   graphRoot,
		runRoot:     runRoot,
		layerDir:    filepath.Join(graphRoot, "overlay-layers"),
		mountDir:    filepath.Join(runRoot, "overlay-layers"),
		drv:         opts.Driver,
		readOnly:    opts.ReadOnly,
		log:         opts.Logger,
		maxDiffSize: opts.MaxDiffSize,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.maxDiffSize <= 0 {
		s.maxDiffSize = DefaultMaxDiffSize
	}
	if !s.readOnly {
		for _, dir := range []string{s.layerDir, s.mountDir} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				if errors.Is(err, syscall.EROFS) {
					return nil, s.readOnlyFSError(dir)
				}
				return nil, fmt.Errorf("layer store: %w", err)
			}
		}
	}
	if s.lock, err = lockfile.Get(filepath.Join(s.layerDir, "layers.lock")); err != nil {
		if !s.readOnly && errors.Is(err, syscall.EROFS) {
			return nil, s.readOnlyFSError(filepath.Join(s.layerDir, "layers.lock"))
		}
		return nil, fmt.Errorf("layer store: %w", err)
	}
	if !s.readOnly && !s.lock.Writable() {
		// lockfile opens a lock file it cannot write read-only, and its
		// write lock would then panic.
		return nil, s.readOnlyFSError(s.lock.Path())
	}
	if s.mountsLock, err = lockfile.Get(filepath.Join(s.mountDir, "mountpoints.lock")); err != nil {
		return nil, fmt.Errorf("layer store: %w", err)
	}

	// The first load, under the write lock for a read-write store, is
	// where crash leftovers are removed.
	var done func()
	if s.readOnly {
		done, err = s.startReading()
	} else {
		done, err = s.startWriting()
	}
	if err != nil {
		return nil, err
	}
	done()
	return s, nil
}

// readOnlyFSError is Open's error for a read-write open of a store whose
// path cannot be written.
func (s *Store) readOnlyFSError(path string) error {
	return fmt.Errorf("layer store %s: %s cannot be written (read-only filesystem?); open the store read-only: %w",
		s.graphRoot, path, driver.ErrReadOnlyStore)
}

// Close releases the store. The lock files stay open for the life of the
// process (closing one would drop locks other Stores of the process hold).
func (s *Store) Close() error { return nil }

// Driver returns the driver that holds the layers' files.
func (s *Store) Driver() driver.Driver { return s.drv }

// GraphRoot returns the store's graph root (absolute).
func (s *Store) GraphRoot() string { return s.graphRoot }

// RunRoot returns the store's run root (absolute).
func (s *Store) RunRoot() string { return s.runRoot }

// layersPath is R/overlay-layers/layers.json.
func (s *Store) layersPath() string { return filepath.Join(s.layerDir, "layers.json") }

// tarSplitPath is where the tar-split record of layer id lives.
func (s *Store) tarSplitPath(id string) string {
	return filepath.Join(s.layerDir, id+".tar-split.gz")
}

// startReading takes the read lock of layers.lock and Store.mu and brings
// the in-memory records up to date. The caller calls the returned function
// to release both.
func (s *Store) startReading() (func(), error) {
	s.lock.RLock()
	s.mu.Lock()
	if err := s.reloadIfChanged(false); err != nil {
		s.mu.Unlock()
		s.lock.RUnlock()
		return nil, err
	}
	return func() {
		s.mu.Unlock()
		s.lock.RUnlock()
	}, nil
}

// startWriting takes the write lock of layers.lock and Store.mu and brings
// the in-memory records up to date, removing crash leftovers. The caller
// calls the returned function to release both.
func (s *Store) startWriting() (func(), error) {
	if s.readOnly {
		return nil, fmt.Errorf("layer store %s: %w", s.graphRoot, driver.ErrReadOnlyStore)
	}
	s.lock.Lock()
	s.mu.Lock()
	if err := s.reloadIfChanged(true); err != nil {
		s.mu.Unlock()
		s.lock.Unlock()
		return nil, err
	}
	return func() {
		s.mu.Unlock()
		s.lock.Unlock()
	}, nil
}

// reloadIfChanged reloads layers.json when another writer changed it since
// the last load. Caller holds layers.lock (write lock when writeLocked) and
// Store.mu. Under the write lock nobody else is creating a layer, so a
// record flagged incomplete is a crash leftover and is removed.
func (s *Store) reloadIfChanged(writeLocked bool) error {
	token, err := s.lock.GetLastWrite()
	if err != nil {
		return fmt.Errorf("layer store: %w", err)
	}
	if !s.loaded || !token.Equal(s.lastWrite) {
		if err := s.load(); err != nil {
			return err
		}
		s.lastWrite = token
	}
	if writeLocked {
		return s.removeIncomplete()
	}
	return nil
}

// load reads layers.json. Caller holds layers.lock and Store.mu. A missing
// or empty file is an empty store.
func (s *Store) load() error {
	path := s.layersPath()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("layer store: %w", err)
	}
	var records []*Layer
	if len(data) > 0 {
		if records, err = decodeRecords(data); err != nil {
			return fmt.Errorf("layer store file %s: %w: %v", path, driver.ErrStoreCorrupt, err)
		}
	}
	seen := make(map[string]bool, len(records))
	kept := records[:0]
	for i, l := range records {
		if l == nil {
			return fmt.Errorf("layer store file %s: record %d is null: %w", path, i, driver.ErrStoreCorrupt)
		}
		if err := driver.ValidateID(l.ID); err != nil {
			return fmt.Errorf("layer store file %s: record %d: %w (%w)", path, i, driver.ErrStoreCorrupt, err)
		}
		if seen[l.ID] {
			return fmt.Errorf("layer store file %s: layer %s recorded twice: %w", path, l.ID, driver.ErrStoreCorrupt)
		}
		seen[l.ID] = true
		kept = append(kept, l)
	}
	s.layers = kept
	s.reindex()
	s.loaded = true
	s.log.Debug("loaded layer records", "file", path, "layers", len(s.layers))
	return nil
}

// reindex rebuilds the id and name maps from s.layers. Caller holds
// Store.mu. A name claimed by two records (another program's doing) stays
// with the first.
func (s *Store) reindex() {
	s.byID = make(map[string]*Layer, len(s.layers))
	s.byName = make(map[string]*Layer)
	s.hidden = s.interrupted()
	for _, l := range s.layers {
		if s.hidden[l.ID] {
			continue
		}
		s.byID[l.ID] = l
		for _, name := range l.Names {
			if other, ok := s.byName[name]; ok {
				s.log.Debug("layer name recorded twice", "name", name, "kept", other.ID, "ignored", l.ID)
				continue
			}
			s.byName[name] = l
		}
	}
}

// save records a write in layers.lock and replaces layers.json with the
// in-memory records. Caller holds the write lock and Store.mu. When the
// write fails the old file stays in place and the next call reloads it.
func (s *Store) save() error {
	s.reindex()
	records := s.layers
	if records == nil {
		records = []*Layer{}
	}
	data, err := encodeRecords(records)
	if err != nil {
		s.loaded = false
		return fmt.Errorf("layer store: encode records: %w", err)
	}
	token, err := s.lock.RecordWrite()
	if err != nil {
		s.loaded = false
		return fmt.Errorf("layer store: %w", err)
	}
	s.lastWrite = token
	if err := writeFileSynced(s.layersPath(), data, 0o600); err != nil {
		s.loaded = false
		return fmt.Errorf("layer store: save: %w", err)
	}
	return nil
}

// writeFileSynced replaces path atomically: a temp file in the same
// directory is written, synced and renamed over path, then the directory is
// synced so the rename survives a crash.
func writeFileSynced(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, perm, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeIncomplete deletes the layers flagged incomplete and every layer
// above them, children first. Caller holds the write lock and Store.mu.
// A layer whose files cannot be removed keeps its record (and flag) so a
// later open tries again.
func (s *Store) removeIncomplete() error {
	doomed := s.interrupted()
	if len(doomed) == 0 {
		return nil
	}
	// Children first: a layer's depth is one more than its parent's.
	depth := map[string]int{}
	var depthOf func(id string) int
	depthOf = func(id string) int {
		if d, ok := depth[id]; ok {
			return d
		}
		depth[id] = 0 // guards against a parent cycle in a damaged file
		if l, ok := s.byIDAll(id); ok && doomed[l.Parent] {
			depth[id] = depthOf(l.Parent) + 1
		}
		return depth[id]
	}
	order := make([]string, 0, len(doomed))
	for id := range doomed {
		order = append(order, id)
	}
	sort.Slice(order, func(i, j int) bool { return depthOf(order[i]) > depthOf(order[j]) })

	removed := map[string]bool{}
	for _, id := range order {
		if err := s.drv.Remove(id); err != nil {
			s.log.Warn("cannot remove files of interrupted layer; will retry on next change", "id", id, "err", err)
			if l, ok := s.byIDAll(id); ok {
				l.setFlag(flagIncomplete, true)
			}
			continue
		}
		if err := removeIfExists(s.tarSplitPath(id)); err != nil {
			s.log.Warn("cannot remove tar-split of interrupted layer", "id", id, "err", err)
		}
		detail := "removed the layer a crash left half made or half deleted"
		if l, ok := s.byIDAll(id); ok && !l.incomplete() {
			detail = "removed with the incomplete layer below it"
		}
		s.noteRecovered(Problem{Kind: "incomplete", ID: id, Detail: detail})
		removed[id] = true
	}
	s.dropRecords(removed)
	return s.save()
}

// interrupted returns the ids of the layers flagged incomplete and of every
// layer above one of them. Caller holds Store.mu.
func (s *Store) interrupted() map[string]bool {
	set := map[string]bool{}
	for _, l := range s.layers {
		if l.incomplete() {
			set[l.ID] = true
		}
	}
	for grew := len(set) > 0; grew; {
		grew = false
		for _, l := range s.layers {
			if !set[l.ID] && l.Parent != "" && set[l.Parent] {
				set[l.ID] = true
				grew = true
			}
		}
	}
	return set
}

// byIDAll finds a record by id, hidden or not. Caller holds Store.mu.
func (s *Store) byIDAll(id string) (*Layer, bool) {
	for _, l := range s.layers {
		if l.ID == id {
			return l, true
		}
	}
	return nil, false
}

// dropRecords removes the records whose ids are in ids. Caller holds
// Store.mu.
func (s *Store) dropRecords(ids map[string]bool) {
	kept := s.layers[:0]
	for _, l := range s.layers {
		if !ids[l.ID] {
			kept = append(kept, l)
		}
	}
	clear(s.layers[len(kept):])
	s.layers = kept
	s.reindex()
}

// layerError names layer id in err, unless err already begins with that
// name: the driver names the layer in its own errors, and saying it twice
// ("layer X: layer X: entry ...") only hides the entry.
func layerError(id string, err error) error {
	if strings.HasPrefix(err.Error(), "layer "+id+": ") {
		return err
	}
	return fmt.Errorf("layer %s: %w", id, err)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
