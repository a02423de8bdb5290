package layers

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

// lookup finds a visible layer by id, then by name, then by unique id
// prefix. Caller holds layers.lock and Store.mu. Layers flagged incomplete,
// and the layers above them, are invisible: under the read lock they are a
// crash's leftovers, which only a writer removes.
func (s *Store) lookup(ref string) (*Layer, error) {
	if ref == "" {
		return nil, fmt.Errorf("empty layer reference: %w", driver.ErrInvalidArgument)
	}
	if l, ok := s.byID[ref]; ok {
		return l, nil
	}
	if l, ok := s.byName[ref]; ok {
		return l, nil
	}
	var match *Layer
	for _, l := range s.layers {
		if s.hidden[l.ID] || !strings.HasPrefix(l.ID, ref) {
			continue
		}
		if match != nil {
			return nil, fmt.Errorf("layer %q: %w", ref, driver.ErrAmbiguous)
		}
		match = l
	}
	if match == nil {
		return nil, fmt.Errorf("layer %q: %w", ref, driver.ErrLayerUnknown)
	}
	return match, nil
}

// hasChildren reports whether a visible layer names id as its parent.
// Caller holds layers.lock and Store.mu.
func (s *Store) hasChildren(id string) bool {
	for _, l := range s.layers {
		if l.Parent == id && !s.hidden[l.ID] {
			return true
		}
	}
	return false
}

// Get returns a copy of the layer ref names. ref is looked up in this
// order: an exact layer id, then an exact name, then a unique prefix of a
// layer id (names can equal neither an id nor, for a new layer, the other
// way round, so the first two never compete). It fails with
// driver.ErrLayerUnknown or driver.ErrAmbiguous. Takes the read lock of
// layers.lock.
func (s *Store) Get(ref string) (*Layer, error) {
	l, done, err := s.lookupLocked(ref, false)
	if err != nil {
		return nil, err
	}
	defer done()
	return l.clone(), nil
}

// lookupLocked takes layers.lock (the write lock when write, else the read
// lock) and Store.mu, then looks ref up. On success the caller calls done
// to release both; on failure nothing is held.
func (s *Store) lookupLocked(ref string, write bool) (l *Layer, done func(), err error) {
	if write {
		done, err = s.startWriting()
	} else {
		done, err = s.startReading()
	}
	if err != nil {
		return nil, nil, err
	}
	if l, err = s.lookup(ref); err != nil {
		done()
		return nil, nil, err
	}
	return l, done, nil
}

// List returns copies of every layer, in layers.json order. Takes the read
// lock of layers.lock.
func (s *Store) List() ([]Layer, error) {
	done, err := s.startReading()
	if err != nil {
		return nil, err
	}
	defer done()

	out := make([]Layer, 0, len(s.layers))
	for _, l := range s.layers {
		if !s.hidden[l.ID] {
			out = append(out, *l.clone())
		}
	}
	return out, nil
}

// ByDigest returns copies of the layers whose compressed, uncompressed or
// TOC digest is d (or whose Additional Layer Store promised d as their
// uncompressed digest), in layers.json order. It fails with
// driver.ErrInvalidArgument for a malformed digest and
// driver.ErrLayerUnknown when no layer matches. Takes the read lock of
// layers.lock.
func (s *Store) ByDigest(d digest.Digest) ([]Layer, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w: %v", d, driver.ErrInvalidArgument, err)
	}
	done, err := s.startReading()
	if err != nil {
		return nil, err
	}
	defer done()

	var out []Layer
	for _, l := range s.layers {
		if s.hidden[l.ID] {
			continue
		}
		expected, _ := l.Flags[flagExpectedDiffID].(string)
		if l.CompressedDigest == d || l.UncompressedDigest == d || l.TOCDigest == d ||
			expected == d.String() {
			out = append(out, *l.clone())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("layer with digest %s: %w", d, driver.ErrLayerUnknown)
	}
	return out, nil
}

// SetNames replaces the names of layer ref. A name another layer holds
// fails with driver.ErrNameInUse and changes nothing. Takes the write lock
// of layers.lock.
func (s *Store) SetNames(ref string, names []string) error {
	names, err := cleanNames(names)
	if err != nil {
		return err
	}
	l, done, err := s.lookupLocked(ref, true)
	if err != nil {
		return err
	}
	defer done()

	if err := s.checkNamesFree(l.ID, names); err != nil {
		return err
	}
	old := l.Names
	l.Names = names
	if err := s.save(); err != nil {
		l.Names = old
		return fmt.Errorf("layer %s: %w", l.ID, err)
	}
	return nil
}

// MaxNameLength is the longest layer name, in bytes.
const MaxNameLength = 256

// checkNamesFree fails with driver.ErrNameInUse when a layer other than id
// holds one of names, or when a name is the id of a layer (id's own
// included). For a new layer (id not recorded yet) it also fails when id
// is another layer's name. Caller holds layers.lock and Store.mu.
func (s *Store) checkNamesFree(id string, names []string) error {
	if _, recorded := s.byIDAll(id); !recorded {
		if other, ok := s.byName[id]; ok {
			return fmt.Errorf("id %s is a name of layer %s: %w", id, other.ID, driver.ErrNameInUse)
		}
	}
	for _, name := range names {
		if other, ok := s.byName[name]; ok && other.ID != id {
			return fmt.Errorf("name %q belongs to layer %s: %w", name, other.ID, driver.ErrNameInUse)
		}
		if _, ok := s.byIDAll(name); ok || name == id {
			return fmt.Errorf("name %q is a layer id: %w", name, driver.ErrNameInUse)
		}
		// Get finds a name before an id prefix, so a name that is a prefix
		// of another layer's id (the short ids `layers` shows) would
		// silently take that prefix over.
		for _, other := range s.layers {
			if other.ID != id && strings.HasPrefix(other.ID, name) {
				return fmt.Errorf("name %q is a prefix of the id of layer %s: %w", name, other.ID, driver.ErrNameInUse)
			}
		}
	}
	return nil
}

// cleanNames checks each name with validName and drops duplicates,
// keeping the first. Put, Create, SetNames and PutAdditionalLayer all
// pass their names through it.
func cleanNames(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, name := range names {
		if err := validName(name); err != nil {
			return nil, err
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, nil
}

// validName fails with driver.ErrInvalidArgument for a name that is empty,
// longer than MaxNameLength bytes, holds a control character (which would
// break a listing) or starts with '-' (which reads as a command-line
// flag).
func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty layer name: %w", driver.ErrInvalidArgument)
	case len(name) > MaxNameLength:
		return fmt.Errorf("layer name %.40q... is %d bytes, more than %d: %w", name, len(name), MaxNameLength, driver.ErrInvalidArgument)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("layer name %q starts with '-': %w", name, driver.ErrInvalidArgument)
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("layer name %q holds a control character: %w", name, driver.ErrInvalidArgument)
		}
	}
	return nil
}
