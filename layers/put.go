package layers

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/internal/compression"
)

// PutOptions describe the layer Put creates.
type PutOptions struct {
	// ID is the new layer's id; "" picks 64 random hex digits.
	ID string
	// Parent is the id, name or unique id prefix of the layer below; ""
	// for none.
	Parent string
	// Names are extra names to find the layer by; none may be in use.
	Names []string
	// MountLabel is the SELinux label for mounts of the layer.
	MountLabel string
	// ExpectedUncompressedDigest and ExpectedCompressedDigest, when set,
	// must match the digests of the diff as received and as applied.
	ExpectedUncompressedDigest digest.Digest
	ExpectedCompressedDigest   digest.Digest
}

// CreateOptions describe the empty layer Create makes.
type CreateOptions struct {
	// ID is the new layer's id; "" picks 64 random hex digits.
	ID string
	// Parent is the id, name or unique id prefix of the layer below.
	Parent string
	// Names are extra names to find the layer by; none may be in use.
	Names []string
	// MountLabel is the SELinux label for mounts of the layer.
	MountLabel string
	// ReadOnly makes an image layer, never mounted writable.
	ReadOnly bool
}

// afterIncompleteSave, when set by a test, runs after the incomplete
// record of a new layer was saved: a test stops the process there to
// leave what a crash would.
var afterIncompleteSave func(id string)

// Put creates a read-only layer from diff, a layer tar that is plain or
// compressed with gzip, zstd or bzip2 (detected by magic), in one pass:
// both digests and sizes are computed, the tar-split record written and the
// files applied while the stream is read once. When anything fails, or the
// digests differ from the expected ones, the store is left as it was.
//
// With a driver that can stage (driver.StagingDriver, as overlay does) the
// diff is applied into a staging area with no lock held, so Puts from
// several goroutines or processes apply at once; the write lock of
// layers.lock is taken only to check the id, parent and names again, record
// the layer and move the staged files into place (see Stage and
// PutStaged). With other drivers Put holds the write lock for the whole
// import.
func (s *Store) Put(opts PutOptions, diff io.Reader) (*Layer, error) {
	if diff == nil {
		return nil, fmt.Errorf("put layer: no diff: %w", driver.ErrInvalidArgument)
	}
	for _, d := range []digest.Digest{opts.ExpectedCompressedDigest, opts.ExpectedUncompressedDigest} {
		if d == "" {
			continue
		}
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("put layer: expected digest %q: %w: %v", d, driver.ErrInvalidArgument, err)
		}
	}
	names, err := cleanNames(opts.Names)
	if err != nil {
		return nil, err
	}

	if _, ok := s.drv.(driver.StagingDriver); ok {
		return s.putStaged(opts, names, diff)
	}
	return s.putLocked(opts, names, diff)
}

// putLocked is Put for a driver that cannot stage: the layer is created
// and applied in place, under the write lock of layers.lock for the whole
// import.
func (s *Store) putLocked(opts PutOptions, names []string, diff io.Reader) (*Layer, error) {
	createAndApply := func(l *Layer) error {
		createOpts := &driver.CreateOpts{MountLabel: l.MountLabel}
		if err := s.drv.Create(l.ID, l.Parent, createOpts); err != nil {
			return fmt.Errorf("layer %s: create: %w", l.ID, err)
		}
		apply := func(o driver.ApplyDiffOpts) (driver.ApplyResult, error) {
			return s.drv.ApplyDiff(l.ID, o)
		}
		info, err := s.importDiff(diff, opts, s.tarSplitPath(l.ID), apply)
		if err != nil {
			return layerError(l.ID, err)
		}
		info.fill(l)
		return nil
	}
	l, err := s.createLayer(opts.ID, opts.Parent, names, opts.MountLabel, true, createAndApply)
	if err != nil {
		return nil, err
	}
	s.log.Debug("layer created", "id", l.ID, "parent", l.Parent, "diff-digest", l.UncompressedDigest,
		"diff-size", l.UncompressedSize, "compression", l.CompressionType)
	return l, nil
}

// Create makes an empty layer: a writable one (a container's layer) unless
// opts.ReadOnly. Takes the write lock of layers.lock.
func (s *Store) Create(opts CreateOptions) (*Layer, error) {
	names, err := cleanNames(opts.Names)
	if err != nil {
		return nil, err
	}
	create := s.drv.CreateReadWrite
	if opts.ReadOnly {
		create = s.drv.Create
	}
	createEmpty := func(l *Layer) error {
		if err := create(l.ID, l.Parent, &driver.CreateOpts{MountLabel: l.MountLabel}); err != nil {
			return fmt.Errorf("layer %s: create: %w", l.ID, err)
		}
		return nil
	}
	l, err := s.createLayer(opts.ID, opts.Parent, names, opts.MountLabel, opts.ReadOnly, createEmpty)
	if err != nil {
		return nil, err
	}
	s.log.Debug("layer created", "id", l.ID, "parent", l.Parent, "read-only", l.ReadOnly)
	return l, nil
}

// createLayer is the sequence every new layer goes through: take the
// write lock, record the layer flagged incomplete (newRecord), let
// materialize make its files and fill in its record, then clear the flag
// and save. When materialize or that save fails the layer is abandoned,
// leaving no record and no files. materialize's errors name the layer.
// It returns a copy of the record. Takes the write lock of layers.lock.
func (s *Store) createLayer(id, parentRef string, names []string, mountLabel string, readOnly bool,
	materialize func(l *Layer) error) (*Layer, error) {
	done, err := s.startWriting()
	if err != nil {
		return nil, err
	}
	defer done()

	l, err := s.newRecord(id, parentRef, names, mountLabel, readOnly)
	if err != nil {
		return nil, err
	}
	if err := materialize(l); err != nil {
		return nil, s.abandon(l, err)
	}
	l.setFlag(flagIncomplete, false)
	if err := s.save(); err != nil {
		return nil, s.abandon(l, fmt.Errorf("layer %s: %w", l.ID, err))
	}
	return l.clone(), nil
}

// checkNewLayer checks that a new layer's id (picked at random when "") is
// valid and free, its parent exists and its names are free, and returns
// the id and the parent's id. Caller holds layers.lock and Store.mu.
func (s *Store) checkNewLayer(id, parentRef string, names []string) (string, string, error) {
	if id == "" {
		var err error
		if id, err = s.randomID(); err != nil {
			return "", "", err
		}
	} else if err := driver.ValidateID(id); err != nil {
		return "", "", err
	}
	if _, ok := s.byIDAll(id); ok {
		return "", "", fmt.Errorf("layer %s: %w", id, driver.ErrLayerExists)
	}
	var parent string
	if parentRef != "" {
		p, err := s.lookup(parentRef)
		if err != nil {
			return "", "", fmt.Errorf("parent of layer %s: %w", id, err)
		}
		parent = p.ID
	}
	if err := s.checkNamesFree(id, names); err != nil {
		return "", "", fmt.Errorf("layer %s: %w", id, err)
	}
	return id, parent, nil
}

// newRecord checks the new layer's id, parent and names, then records it
// flagged incomplete and saves, so a crash from here on leaves a record the
// next open cleans up. Caller holds the write lock and Store.mu.
func (s *Store) newRecord(id, parentRef string, names []string, mountLabel string,
	readOnly bool) (*Layer, error) {
	id, parent, err := s.checkNewLayer(id, parentRef, names)
	if err != nil {
		return nil, err
	}

	l := &Layer{
		ID:         id,
		Names:      names,
		Parent:     parent,
		MountLabel: mountLabel,
		Created:    time.Now().UTC(),
		ReadOnly:   readOnly,
	}
	l.setFlag(flagIncomplete, true)
	l.setFlag(flagReadOnly, readOnly)
	s.layers = append(s.layers, l)
	if err := s.save(); err != nil {
		s.dropRecords(map[string]bool{id: true})
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	if afterIncompleteSave != nil {
		afterIncompleteSave(id)
	}
	return l, nil
}

// randomID returns 64 random hex digits no layer uses. Caller holds
// Store.mu.
func (s *Store) randomID() (string, error) {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("layer id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		if _, ok := s.byIDAll(id); !ok {
			return id, nil
		}
	}
}

// abandon undoes a layer whose creation failed: its files, its tar-split
// record and its record go, and the store is saved as it was before. It
// returns cause, with any cleanup failure attached. Caller holds the write
// lock and Store.mu.
func (s *Store) abandon(l *Layer, cause error) error {
	var errs []error
	if err := s.drv.Remove(l.ID); err != nil {
		errs = append(errs, fmt.Errorf("remove files: %w", err))
	}
	if err := removeIfExists(s.tarSplitPath(l.ID)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// The record stays flagged incomplete so the next open retries.
		s.log.Warn("cannot clean up failed layer; the next read-write open retries",
			"id", l.ID, "err", errors.Join(errs...))
		return cause
	}
	s.dropRecords(map[string]bool{l.ID: true})
	if err := s.save(); err != nil {
		s.log.Warn("cannot save after dropping failed layer", "id", l.ID, "err", err)
	}
	return cause
}

// applyFunc applies an uncompressed layer tar: driver.Driver.ApplyDiff for
// a layer, or driver.Staged.ApplyDiff for a staging area.
type applyFunc func(driver.ApplyDiffOpts) (driver.ApplyResult, error)

// diffInfo is what importDiff learnt about a layer's diff.
type diffInfo struct {
	compressedDigest, uncompressedDigest digest.Digest
	compressedSize, uncompressedSize     int64
	compression                          Compression
	uids, gids                           []uint32
}

// fill copies the digests, sizes, compression and owners into l.
func (d diffInfo) fill(l *Layer) {
	l.CompressedDigest = d.compressedDigest
	l.CompressedSize = d.compressedSize
	l.UncompressedDigest = d.uncompressedDigest
	l.UncompressedSize = d.uncompressedSize
	l.CompressionType = d.compression
	l.UIDs = d.uids
	l.GIDs = d.gids
}

// importDiff runs the one-pass pipeline:
//
//	diff -> count+hash (compressed) -> decompress -> count+hash+limit
//	     -> fanout -> apply                (this goroutine)
//	               -> tar-split recorder   (a goroutine of its own, to tarSplitPath)
//
// then drains every stage to EOF, so the digests cover all bytes received,
// and checks the expected digests. It touches no record, so it needs no
// lock of the store.
func (s *Store) importDiff(diff io.Reader, opts PutOptions, tarSplitPath string,
	apply applyFunc) (diffInfo, error) {
	var info diffInfo
	compressed := newMeter(opts.ExpectedCompressedDigest, 0)
	buffered := bufio.NewReaderSize(io.TeeReader(diff, compressed), 64<<10)
	decompressed, alg, err := compression.NewReader(buffered)
	if err != nil {
		return info, layerDataError(err)
	}
	defer decompressed.Close()

	// The producer decompresses and counts (the size limit stops it); the
	// uncompressed stream is hashed on the recorder's goroutine, which
	// reads every byte anyway, so that decompression and hashing run on
	// two cores.
	sized := &meter{limit: s.maxDiffSize, countOnly: true}
	uncompressed := newMeter(opts.ExpectedUncompressedDigest, 0)
	// A plain tar is its own compressed form: hashing it once is enough.
	sameBytes := alg == compression.None &&
		(opts.ExpectedCompressedDigest == "" || opts.ExpectedCompressedDigest.Algorithm() == digest.SHA256)
	if sameBytes {
		compressed.countOnly = true
	}
	fan := newFanout(io.TeeReader(decompressed, sized))
	recorder, err := newTarSplitRecorder(tarSplitPath, fan.split)
	if err != nil {
		return info, err
	}
	fan.start()
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		// The recorder reads to the stream's end, or stops at its own
		// failure (which finish reports, failing the Put); the rest is
		// let go by.
		io.Copy(uncompressed, recorder)
		fan.split.drain()
	}()

	result, applyErr := apply(driver.ApplyDiffOpts{Diff: fan.apply, Logger: s.log})
	if applyErr != nil {
		fan.stop()
	}
	// The tar may end before the stream does (end blocks, padding, gzip
	// members): the rest is read so the digests cover it.
	streamErr := fan.apply.drain()
	<-recorded
	recordErr := recorder.finish(applyErr)

	// An applier's error that blames the layer data names the entry (and
	// wraps a stream failure that caused it): it wins. Otherwise a failure
	// of the stream (bad compression, too big) or of the recorder (a tar
	// it cannot parse) explains what went wrong better than the driver.
	// The apply error is kept in the message of the others: it names the
	// entry.
	withApply := func(err error) error {
		if applyErr != nil {
			return fmt.Errorf("%w (while applying: %v)", err, applyErr)
		}
		return err
	}
	switch {
	case applyErr != nil && errors.Is(applyErr, driver.ErrInvalidLayerData):
		return info, applyErr
	case streamErr != nil && streamErr != io.ErrClosedPipe: // not our own stop
		return info, layerDataError(withApply(streamErr))
	case recordErr != nil:
		return info, layerDataError(withApply(recordErr))
	case applyErr != nil:
		return info, layerDataError(applyErr)
	}
	if _, err := io.Copy(io.Discard, buffered); err != nil {
		return info, layerDataError(err)
	}
	// Zero bytes are no tar (an empty layer is 1024 zero bytes at least):
	// an empty file or /dev/null given by mistake is not a layer.
	if sized.size == 0 {
		return info, fmt.Errorf("empty diff: 0 bytes is not a tar: %w", driver.ErrInvalidLayerData)
	}

	if uncompressed.size != sized.size {
		// The recorder stopped early without reporting why.
		return info, fmt.Errorf("tar-split recorder hashed %d of %d bytes", uncompressed.size, sized.size)
	}
	if sameBytes {
		compressed.sha256 = uncompressed.sha256
	}
	if err := compressed.check("compressed"); err != nil {
		return info, err
	}
	if err := uncompressed.check("uncompressed"); err != nil {
		return info, err
	}
	return diffInfo{
		compressedDigest:   compressed.digest(),
		compressedSize:     compressed.size,
		uncompressedDigest: uncompressed.digest(),
		uncompressedSize:   uncompressed.size,
		compression:        Compression(alg),
		uids:               result.UIDs,
		gids:               result.GIDs,
	}, nil
}

// layerDataError marks a failure of the layer stream itself (bad
// compression, bad tar, too big) as driver.ErrInvalidLayerData unless it
// already matches a sentinel.
func layerDataError(err error) error {
	switch {
	case errors.Is(err, driver.ErrInvalidLayerData), errors.Is(err, driver.ErrNotSupported),
		errors.Is(err, driver.ErrInvalidArgument):
		return err
	case errors.Is(err, compression.ErrUnsupported):
		return fmt.Errorf("%w (%w)", err, driver.ErrNotSupported)
	case errors.Is(err, compression.ErrCorrupt), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, errTooBig), errors.Is(err, errTarSplit):
		return fmt.Errorf("%w (%w)", err, driver.ErrInvalidLayerData)
	}
	return err
}

var errTooBig = errors.New("layer is larger than the size limit")

// meter counts and hashes the bytes written to it, and fails once more
// than limit bytes arrive (limit 0: no limit). Besides the sha256 the store
// records, it hashes with the expected digest's algorithm when that is
// another one.
type meter struct {
	size      int64
	limit     int64
	countOnly bool // counts without hashing (the digest comes from elsewhere)
	sha256    digest.Digester
	expected  digest.Digest
	other     hash.Hash // expected's algorithm when not sha256
}

func newMeter(expected digest.Digest, limit int64) *meter {
	m := &meter{limit: limit, sha256: digest.SHA256.Digester(), expected: expected}
	if expected != "" && expected.Algorithm() != digest.SHA256 {
		m.other = expected.Algorithm().Hash()
	}
	return m
}

func (m *meter) Write(p []byte) (int, error) {
	m.size += int64(len(p))
	if m.limit > 0 && m.size > m.limit {
		return 0, fmt.Errorf("%w (%d bytes uncompressed)", errTooBig, m.limit)
	}
	if m.countOnly {
		return len(p), nil
	}
	m.sha256.Hash().Write(p)
	if m.other != nil {
		m.other.Write(p)
	}
	return len(p), nil
}

func (m *meter) digest() digest.Digest { return m.sha256.Digest() }

// check compares the stream's digest with the expected one.
func (m *meter) check(what string) error {
	if m.expected == "" {
		return nil
	}
	got := m.digest()
	if m.other != nil {
		got = digest.NewDigest(m.expected.Algorithm(), m.other)
	}
	if got != m.expected {
		return fmt.Errorf("%s digest is %s, expected %s: %w", what, got, m.expected, driver.ErrInvalidLayerData)
	}
	return nil
}
