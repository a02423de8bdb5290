package overlay

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unicode"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
)

// Names inside an Additional Layer Store layer dir (DESIGN.md,
// "Additional Layer Store").
const (
	alsDiffName    = "diff"
	alsInfoName    = "info"
	alsBlobName    = "blob"
	alsUseName     = "use"
	alsRefSuffix   = ":ref"
	maxALSRefBytes = 4096
)

var _ driver.AdditionalLayerStoreDriver = (*Driver)(nil)

func init() {
	initHooks = append(initHooks, setupAdditionalLayerStores)
}

// alsLocation is one configured store: its root and whether the image
// reference is part of the layer's path.
type alsLocation struct {
	root    string
	withRef bool
}

// parseALSLocations reads "PATH" and "PATH:ref" entries. PATH must be
// absolute; a PATH that itself ends in ":ref" cannot be expressed.
func parseALSLocations(entries []string) ([]alsLocation, error) {
	locs := make([]alsLocation, 0, len(entries))
	for _, e := range entries {
		loc := alsLocation{root: e}
		if p, ok := strings.CutSuffix(e, alsRefSuffix); ok {
			loc = alsLocation{root: p, withRef: true}
		}
		if !filepath.IsAbs(loc.root) || strings.ContainsRune(loc.root, 0) {
			return nil, fmt.Errorf("additional layer store %q: want an absolute PATH or PATH:ref: %w",
				e, driver.ErrInvalidArgument)
		}
		loc.root = filepath.Clean(loc.root)
		locs = append(locs, loc)
	}
	return locs, nil
}

// setupAdditionalLayerStores checks the configured stores when the driver
// opens and hooks ALS layers into mount and remove.
func setupAdditionalLayerStores(d *Driver) error {
	if _, err := parseALSLocations(d.opts.AdditionalLayerStores); err != nil {
		return err
	}
	d.resolveAdditional = d.resolveAdditionalDiff
	d.releaseAdditional = func(id, alsDir string) { d.notifyRelease(alsDir, "layer", id) }
	return nil
}

// validateALSRef checks an image reference before it becomes (base64
// encoded) part of a path. Base64 cannot form "." or ".." components, so
// '/' and ".." inside a reference are harmless and normal refs such as
// docker.io/library/busybox keep working; NUL and other control
// characters are never part of a reference and are refused.
func validateALSRef(ref string) error {
	if len(ref) > maxALSRefBytes {
		return fmt.Errorf("image reference %.40q... is longer than %d bytes: %w",
			ref, maxALSRefBytes, driver.ErrInvalidArgument)
	}
	if i := strings.IndexFunc(ref, unicode.IsControl); i >= 0 {
		return fmt.Errorf("image reference %q has control character %q: %w",
			ref, ref[i], driver.ErrInvalidArgument)
	}
	return nil
}

// validateALSDigest checks a TOC digest before it becomes a path component.
func validateALSDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("layer digest %q: %v: %w", string(d), err, driver.ErrInvalidArgument)
	}
	return nil
}

// layerDir is the one place that builds an ALS layer path:
// root[/base64(ref)]/<digest>. It refuses a result outside root.
func (l alsLocation) layerDir(tocDigest digest.Digest, ref string) (string, error) {
	dir := l.root
	if l.withRef {
		if ref == "" {
			return "", fmt.Errorf("additional layer store %s needs an image reference: %w",
				l.root, driver.ErrLayerUnknown)
		}
		dir = filepath.Join(dir, base64.StdEncoding.EncodeToString([]byte(ref)))
	}
	dir = filepath.Join(dir, tocDigest.String())
	if rel, err := filepath.Rel(l.root, dir); err != nil || rel == "." ||
		rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("layer %s for %q leaves additional layer store %s: %w",
			tocDigest, ref, l.root, driver.ErrInvalidArgument)
	}
	return dir, nil
}

// checkALSLayerDir tells whether dir holds a whole layer. It asks for diff,
// then info, then blob: a lazy store may answer info for layers it does
// not have, and only looking diff up makes it resolve the layer.
func checkALSLayerDir(dir string) error {
	for _, name := range []string{alsDiffName, alsInfoName, alsBlobName} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if wantDir := name == alsDiffName; st.IsDir() != wantDir {
			return fmt.Errorf("%s: unexpected file type %s", filepath.Join(dir, name), st.Mode().Type())
		}
	}
	return nil
}

// LookupAdditionalLayer finds layer tocDigest for image ref in the
// configured stores, in order, and notifies the store of the use. The
// error matches ErrInvalidArgument for a bad digest or ref and
// ErrLayerUnknown when no store offers the whole layer.
func (d *Driver) LookupAdditionalLayer(tocDigest digest.Digest, ref string) (driver.AdditionalLayer, error) {
	if err := validateALSDigest(tocDigest); err != nil {
		return nil, err
	}
	if err := validateALSRef(ref); err != nil {
		return nil, err
	}
	locs, err := parseALSLocations(d.opts.AdditionalLayerStores)
	if err != nil {
		return nil, err
	}

	var misses []string
	for _, loc := range locs {
		dir, err := loc.layerDir(tocDigest, ref)
		if err != nil {
			if errors.Is(err, driver.ErrInvalidArgument) {
				return nil, err
			}
			misses = append(misses, err.Error())
			continue
		}
		if err := checkALSLayerDir(dir); err != nil {
			d.logger.Debug("additional layer store has no layer", "store", loc.root,
				"digest", tocDigest, "ref", ref, "err", err)
			misses = append(misses, err.Error())
			continue
		}
		d.notifyUse(dir, "digest", tocDigest.String())
		return &additionalLayer{d: d, dir: dir, digest: tocDigest}, nil
	}
	if len(misses) == 0 {
		misses = append(misses, "no additional layer store is configured")
	}
	return nil, fmt.Errorf("layer %s for %q: %s: %w",
		tocDigest, ref, strings.Join(misses, "; "), driver.ErrLayerUnknown)
}

// LookupAdditionalLayerByID returns the store layer that layer id was
// created from, notifying the store of the use (Release notifies the
// release). The error matches ErrLayerUnknown when id is not such a layer
// and ErrAdditionalLayerStoreGone when its store does not answer.
func (d *Driver) LookupAdditionalLayerByID(id string) (driver.AdditionalLayer, error) {
	dir, err := d.additionalLayerDir(id)
	if err != nil {
		return nil, err
	}
	if err := checkALSLayerDir(dir); err != nil {
		return nil, fmt.Errorf("layer %s: additional layer store path %s: %v: %w",
			id, dir, err, driver.ErrAdditionalLayerStoreGone)
	}
	d.notifyUse(dir, "layer", id)
	return &additionalLayer{d: d, dir: dir, digest: digest.Digest(filepath.Base(dir))}, nil
}

// additionalLayerDir reads the ALS layer dir recorded for layer id.
func (d *Driver) additionalLayerDir(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	b, err := os.ReadFile(d.additionalLayerFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("layer %s is not from an additional layer store: %w", id, driver.ErrLayerUnknown)
	}
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	dir := string(b)
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", fmt.Errorf("layer %s: %s holds %q, not an absolute clean path: %w",
			id, d.additionalLayerFile(id), dir, driver.ErrStoreCorrupt)
	}
	return dir, nil
}

// resolveAdditionalDiff is the directory that holds the files of ALS
// layer id; it fails naming the layer and the store path when the store
// has gone away.
func (d *Driver) resolveAdditionalDiff(id, alsDir string) (string, error) {
	diff := filepath.Join(alsDir, alsDiffName)
	st, err := os.Stat(diff)
	if err == nil && !st.IsDir() {
		err = fmt.Errorf("not a directory")
	}
	if err != nil {
		return "", fmt.Errorf("layer %s: files in additional layer store at %s: %v: %w",
			id, diff, err, driver.ErrAdditionalLayerStoreGone)
	}
	return diff, nil
}

// createFromAdditional makes layer id on top of parent whose diff is a
// symlink to the ALS layer's diff, records the ALS dir in the layer's
// additionallayer file and notifies the store of the use. On failure
// nothing of layer id is left.
func (d *Driver) createFromAdditional(id, parent, alsDir string) (err error) {
	if err := d.Create(id, parent, nil); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rmErr := os.RemoveAll(d.layerDir(id)); rmErr != nil {
				d.logger.Warn("removing half-made layer", "layer", id, "err", rmErr)
			}
		}
	}()

	if err := os.WriteFile(d.additionalLayerFile(id), []byte(alsDir), 0o644); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if err := os.Remove(d.diffDir(id)); err != nil {
		return fmt.Errorf("layer %s: replacing diff with the store's: %w", id, err)
	}
	if err := os.Symlink(filepath.Join(alsDir, alsDiffName), d.diffDir(id)); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	d.notifyUse(alsDir, "layer", id)
	return nil
}

// notifyUse tells a counting store that alsDir is in use: create, then
// delete, a file named use. ENOENT means the store understood; anything
// else means it does not count, which is fine.
func (d *Driver) notifyUse(alsDir string, logKV ...string) {
	p := filepath.Join(alsDir, alsUseName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, syscall.EEXIST) {
		// A store that does not count keeps the file until it is removed:
		// one left by a process killed between create and delete would
		// otherwise block every later notification. It is strata's own
		// file, never the store's content.
		d.logger.Debug("removing a stale use file", append(kv(logKV), "path", p)...)
		if rmErr := os.Remove(p); rmErr == nil {
			f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		}
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return
	case err != nil:
		d.logger.Debug("additional layer store ignores use", append(kv(logKV), "path", p, "err", err)...)
		return
	}
	f.Close()
	if err := os.Remove(p); err != nil {
		d.logger.Debug("removing use file", append(kv(logKV), "path", p, "err", err)...)
	}
	d.logger.Debug("additional layer store does not count uses", append(kv(logKV), "path", alsDir)...)
}

// notifyRelease tells a counting store that alsDir is released: rmdir it.
// ENOENT means understood; a plain directory answers ENOTEMPTY and keeps
// everything.
func (d *Driver) notifyRelease(alsDir string, logKV ...string) {
	err := syscall.Rmdir(alsDir)
	if err == syscall.ENOENT {
		return
	}
	d.logger.Debug("additional layer store did not take release", append(kv(logKV), "path", alsDir, "err", err)...)
}

func kv(pairs []string) []any {
	out := make([]any, len(pairs))
	for i, p := range pairs {
		out[i] = p
	}
	return out
}

// additionalLayer is a handle on one ALS layer dir.
type additionalLayer struct {
	d       *Driver
	dir     string
	digest  digest.Digest
	release sync.Once
}

// TOCDigest is the digest the layer is stored under, which the layer
// store checks against the info record.
func (a *additionalLayer) TOCDigest() digest.Digest { return a.digest }

// Info opens the store's layer record.
func (a *additionalLayer) Info() (io.ReadCloser, error) {
	return os.Open(filepath.Join(a.dir, alsInfoName))
}

// Blob opens the layer's compressed bytes.
func (a *additionalLayer) Blob() (io.ReadCloser, error) {
	return os.Open(filepath.Join(a.dir, alsBlobName))
}

// CreateAs makes layer id on top of parent with this layer's files.
func (a *additionalLayer) CreateAs(id, parent string) error {
	return a.d.createFromAdditional(id, parent, a.dir)
}

// Release notifies the store once, however often it is called.
func (a *additionalLayer) Release() {
	a.release.Do(func() { a.d.notifyRelease(a.dir) })
}
