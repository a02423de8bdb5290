package layers

import (
	_ "crypto/sha256" // registers sha256 for go-digest
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/archive"
	"github.com/stratafs/strata/driver"
)

// exportSource is what Diff, Changes and DiffSize need of a layer, copied
// out of the records so the export itself runs without Store.mu.
type exportSource struct {
	layer    *Layer
	diffDir  string   // the layer's own files, symlinks resolved
	lowers   []string // parents' diff dirs, nearest first
	tarSplit string   // tar-split record path, "" when there is none
}

// exportSourceOf looks up ref and the diff dirs of its chain. Takes the
// read lock of layers.lock for the lookup only: a layer deleted while it
// is being exported makes the export fail with a missing-file error.
func (s *Store) exportSourceOf(ref string, withLowers bool) (*exportSource, error) {
	l, done, err := s.lookupLocked(ref, false)
	if err != nil {
		return nil, err
	}
	defer done()

	src := &exportSource{layer: l.clone()}
	if src.diffDir, err = s.resolvedDiffPath(l.ID); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.tarSplitPath(l.ID)); err == nil {
		src.tarSplit = s.tarSplitPath(l.ID)
	}
	if !withLowers {
		return src, nil
	}
	for parent := l.Parent; parent != ""; {
		p, ok := s.byID[parent]
		if !ok || p.incomplete() {
			return nil, fmt.Errorf("layer %s: parent %s: %w", l.ID, parent, driver.ErrLayerUnknown)
		}
		dir, err := s.resolvedDiffPath(p.ID)
		if err != nil {
			return nil, err
		}
		src.lowers = append(src.lowers, dir)
		parent = p.Parent
	}
	return src, nil
}

// resolvedDiffPath returns layer id's diff dir with symlinks resolved (an
// Additional Layer Store layer's diff is a link into the store).
func (s *Store) resolvedDiffPath(id string) (string, error) {
	dir, err := s.drv.DiffPath(id)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("layer %s: diff dir %s is missing: %w", id, dir, driver.ErrLayerUnknown)
	}
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	return resolved, nil
}

// DiffSource tells how Diff produced a layer's tar.
type DiffSource string

// The ways Diff can produce a tar.
const (
	// DiffFromTarSplit: the exact bytes of the tar the layer was created
	// from, reassembled from its tar-split record.
	DiffFromTarSplit DiffSource = "tar-split"
	// DiffFromDirectory: a tar made from the layer's diff dir, because
	// the layer has no tar-split record or its files changed since.
	DiffFromDirectory DiffSource = "directory"
)

// Diff writes the uncompressed tar of layer ref (id, name or unique id
// prefix) to w and says how it was made.
//
// A layer created from a tar that kept its tar-split record is written
// byte for byte as it was imported; its sha256 is the recorded diff
// digest, which Diff checks. A read-only (image) layer is trusted to be
// unchanged; for other layers the record is first checked against the
// files in a dry run, and a layer changed through a mount is exported
// from its diff dir instead (archive.Export: whiteouts as .wh. entries,
// sorted, hardlinks kept).
//
// Takes the read lock of layers.lock only while looking the layer up.
func (s *Store) Diff(ref string, w io.Writer) (DiffSource, error) {
	src, err := s.exportSourceOf(ref, false)
	if err != nil {
		return "", err
	}
	id := src.layer.ID

	useTarSplit := src.tarSplit != ""
	if useTarSplit && !src.layer.flagSet(flagReadOnly) {
		if err := s.reassemble(src, io.Discard); err != nil {
			s.log.Warn("the layer's tar-split record does not give back its tar (changed through a mount, "+
				"or recorded by another program with entries strata cannot reproduce): exporting the "+
				"diff dir, whose tar will not have the recorded diff digest",
				"layer", id, "err", err)
			useTarSplit = false
		}
	}
	if !useTarSplit {
		view, release := s.mergedViewOf(id)
		defer release()
		opts := archive.ExportOptions{Logger: s.log, MergedView: view}
		if err := archive.Export(src.diffDir, w, opts); err != nil {
			return "", fmt.Errorf("layer %s: %w", id, err)
		}
		return DiffFromDirectory, nil
	}
	if err := s.reassemble(src, w); err != nil {
		return "", err
	}
	return DiffFromTarSplit, nil
}

// readOnlyViewer is met by drivers (overlay) that can mount a layer with
// its parents read-only at a private path, apart from Mount and its counts.
type readOnlyViewer interface {
	ReadOnlyView(id string) (dir string, release func() error, err error)
}

// mergedViewOf returns, for archive.Export and archive.ChangesWith, a
// function that mounts a read-only view of layer id when first asked (a
// diff dir with metacopy files or redirect dirs needs it), and a release
// to call when the export is over. Needs no lock of the store.
func (s *Store) mergedViewOf(id string) (open func() (string, error), release func()) {
	var unmount func() error
	open = func() (string, error) {
		v, ok := s.drv.(readOnlyViewer)
		if !ok {
			return "", fmt.Errorf("driver %s cannot mount a read-only view of layer %s: %w",
				s.drv.Name(), id, driver.ErrNotSupported)
		}
		dir, rel, err := v.ReadOnlyView(id)
		if err != nil {
			return "", err
		}
		unmount = rel
		return dir, nil
	}
	release = func() {
		if unmount == nil {
			return
		}
		if err := unmount(); err != nil {
			s.log.Warn("cannot unmount the read-only view used for export", "layer", id, "err", err)
		}
	}
	return open, release
}

// reassemble writes the tar-split reassembly of src to w and checks its
// digest against the layer's recorded diff digest (when it has one).
func (s *Store) reassemble(src *exportSource, w io.Writer) error {
	id := src.layer.ID
	f, err := os.Open(src.tarSplit)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer f.Close()

	want := src.layer.UncompressedDigest
	var digester digest.Digester
	if want != "" && want.Validate() == nil {
		digester = want.Algorithm().Digester()
		w = io.MultiWriter(w, digester.Hash())
	}
	var limit *sizeLimitWriter
	if size := src.layer.UncompressedSize; size > 0 {
		// A record that names files over and over cannot make the
		// export longer than the layer, nor a cut one shorter.
		limit = &sizeLimitWriter{w: w, left: size}
		w = limit
	}
	if err := archive.ExportTarSplit(src.diffDir, f, w); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if limit != nil && limit.left != 0 {
		return fmt.Errorf("layer %s: reassembled tar is %d bytes shorter than the recorded diff size: %w",
			id, limit.left, driver.ErrInvalidLayerData)
	}
	if digester != nil && digester.Digest() != want {
		return fmt.Errorf("layer %s: reassembled tar has digest %s, recorded diff digest is %s: %w",
			id, digester.Digest(), want, driver.ErrInvalidLayerData)
	}
	return nil
}

// sizeLimitWriter fails a write that would take the output past the
// layer's recorded diff size.
type sizeLimitWriter struct {
	w    io.Writer
	left int64
}

func (l *sizeLimitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("reassembled tar is longer than the recorded diff size: %w", driver.ErrInvalidLayerData)
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
