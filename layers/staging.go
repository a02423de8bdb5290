package layers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// Staged puts: the expensive part of a Put (decompressing, hashing,
// recording tar-split, applying the files) runs with no lock of the store
// held, into a staging area of the driver (driver.StagingDriver); only the
// commit takes the write lock of layers.lock: check id, parent and names,
// record the layer flagged incomplete, move the tar-split file and the
// staged files into place, clear the flag. A failure anywhere leaves no
// record, no layer directory, no tar-split file and no staging area; a
// crash leaves at most an incomplete record (removed by the next
// read-write open) and a staging area (removed by the driver when it is
// next opened, unless a live process still holds it).

// tarSplitScratchName is the tar-split file's name inside the staging
// area's scratch dir, until the commit moves it to tarSplitPath.
const tarSplitScratchName = "tar-split.gz"

// StageOptions are the checks Stage makes on the diff.
type StageOptions struct {
	// ExpectedUncompressedDigest and ExpectedCompressedDigest, when set,
	// must match the digests of the diff as received and as applied.
	ExpectedUncompressedDigest digest.Digest
	ExpectedCompressedDigest   digest.Digest
}

// StagedLayer is a layer diff applied by Stage and not yet a layer of the
// store: PutStaged makes it one, Discard throws it away. It belongs to one
// goroutine at a time.
type StagedLayer struct {
	staged   driver.Staged
	info     diffInfo
	expected StageOptions // checked by Stage
	used     bool
}

// UncompressedDigest is the digest of the uncompressed diff.
func (st *StagedLayer) UncompressedDigest() digest.Digest { return st.info.uncompressedDigest }

// Discard removes the staged files. It is safe to call more than once and
// after PutStaged.
func (st *StagedLayer) Discard() error {
	st.used = true
	return st.staged.Discard()
}

// Stage decompresses, hashes, records and applies diff (as Put does) into
// a staging area of the driver, taking no lock of the store, so several
// Stage calls run at once. The diff's expected digests are checked before
// it returns. The driver must be a driver.StagingDriver (overlay is);
// otherwise the error matches driver.ErrNotSupported. On failure nothing is
// left.
func (s *Store) Stage(opts StageOptions, diff io.Reader) (*StagedLayer, error) {
	if diff == nil {
		return nil, fmt.Errorf("stage layer: no diff: %w", driver.ErrInvalidArgument)
	}
	if err := validateExpected(opts.ExpectedCompressedDigest, opts.ExpectedUncompressedDigest); err != nil {
		return nil, fmt.Errorf("stage layer: %w", err)
	}
	st, err := s.stage(opts, diff)
	if err != nil {
		return nil, fmt.Errorf("stage layer: %w", err)
	}
	return st, nil
}

// stage is Stage once the options are checked.
func (s *Store) stage(opts StageOptions, diff io.Reader) (*StagedLayer, error) {
	if s.readOnly {
		return nil, fmt.Errorf("layer store %s: %w", s.graphRoot, driver.ErrReadOnlyStore)
	}
	sd, ok := s.drv.(driver.StagingDriver)
	if !ok {
		return nil, fmt.Errorf("driver %s cannot stage layers: %w", s.drv.Name(), driver.ErrNotSupported)
	}
	staged, err := sd.Stage()
	if err != nil {
		return nil, err
	}
	putOpts := PutOptions{
		ExpectedCompressedDigest:   opts.ExpectedCompressedDigest,
		ExpectedUncompressedDigest: opts.ExpectedUncompressedDigest,
	}
	scratchTarSplit := filepath.Join(staged.ScratchDir(), tarSplitScratchName)
	info, err := s.importDiff(diff, putOpts, scratchTarSplit, staged.ApplyDiff)
	if err != nil {
		if derr := staged.Discard(); derr != nil {
			s.log.Warn("cannot remove staging area of a failed layer; the driver's next open does", "err", derr)
		}
		return nil, err
	}
	return &StagedLayer{staged: staged, info: info, expected: opts}, nil
}

// PutStaged makes st a read-only layer with opts' id, parent, names and
// mount label, under the write lock of layers.lock; the expected digests
// of opts, when set, must be those st was staged with or its own. st is
// used up whether PutStaged succeeds or not. When it fails the store is
// left as it was.
func (s *Store) PutStaged(opts PutOptions, st *StagedLayer) (*Layer, error) {
	if st == nil || st.used {
		return nil, fmt.Errorf("put staged layer: already used: %w", driver.ErrInvalidArgument)
	}
	defer st.Discard()
	st.used = true
	names, err := cleanNames(opts.Names)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		what               string
		want, staged, have digest.Digest
	}{
		{"compressed", opts.ExpectedCompressedDigest, st.expected.ExpectedCompressedDigest, st.info.compressedDigest},
		{"uncompressed", opts.ExpectedUncompressedDigest, st.expected.ExpectedUncompressedDigest, st.info.uncompressedDigest},
	} {
		if c.want != "" && c.want != c.staged && c.want != c.have {
			return nil, fmt.Errorf("put staged layer: %s digest is %s, expected %s: %w",
				c.what, c.have, c.want, driver.ErrInvalidLayerData)
		}
	}

	commit := func(l *Layer) error {
		scratch := filepath.Join(st.staged.ScratchDir(), tarSplitScratchName)
		if err := moveFile(scratch, s.tarSplitPath(l.ID)); err != nil {
			return fmt.Errorf("layer %s: tar-split: %w", l.ID, err)
		}
		createOpts := &driver.CreateOpts{MountLabel: l.MountLabel}
		if err := st.staged.Commit(l.ID, l.Parent, createOpts); err != nil {
			return fmt.Errorf("layer %s: commit: %w", l.ID, err)
		}
		st.info.fill(l)
		return nil
	}
	l, err := s.createLayer(opts.ID, opts.Parent, names, opts.MountLabel, true, commit)
	if err != nil {
		return nil, err
	}
	s.log.Debug("layer created", "id", l.ID, "parent", l.Parent, "diff-digest", l.UncompressedDigest,
		"diff-size", l.UncompressedSize, "compression", l.CompressionType, "staged", true)
	return l, nil
}

// putStaged is Put with a staging driver: what can be checked cheaply is
// checked under the read lock first, so a clash fails before the diff is
// read; the commit checks again.
func (s *Store) putStaged(opts PutOptions, names []string, diff io.Reader) (*Layer, error) {
	if s.readOnly {
		return nil, fmt.Errorf("layer store %s: %w", s.graphRoot, driver.ErrReadOnlyStore)
	}
	id, err := s.precheckPut(opts.ID, opts.Parent, names)
	if err != nil {
		return nil, err
	}
	st, err := s.stage(StageOptions{
		ExpectedCompressedDigest:   opts.ExpectedCompressedDigest,
		ExpectedUncompressedDigest: opts.ExpectedUncompressedDigest,
	}, diff)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	opts.ID = id
	return s.PutStaged(opts, st)
}

// precheckPut checks under the read lock that the new layer's id (picked
// at random when "") is valid and free, its parent exists and its names
// are free, and returns the id.
func (s *Store) precheckPut(id, parentRef string, names []string) (string, error) {
	done, err := s.startReading()
	if err != nil {
		return "", err
	}
	defer done()

	id, _, err = s.checkNewLayer(id, parentRef, names)
	return id, err
}

// validateExpected checks the form of expected digests ("" is none).
func validateExpected(ds ...digest.Digest) error {
	for _, d := range ds {
		if d == "" {
			continue
		}
		if err := d.Validate(); err != nil {
			return fmt.Errorf("expected digest %q: %w: %v", d, driver.ErrInvalidArgument, err)
		}
	}
	return nil
}

// moveFile renames from to to, copying when they are on different file
// systems (the driver's home may be a mount of its own).
func moveFile(from, to string) error {
	err := os.Rename(from, to)
	if !errors.Is(err, unix.EXDEV) {
		return err
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
