package overlay

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
)

// Create makes the directories of read-only layer id on top of parent.
func (d *Driver) Create(id, parent string, opts *driver.CreateOpts) error {
	return d.create(id, parent, opts)
}

// CreateReadWrite makes the directories of a layer meant to be mounted
// read-write. The overlay layout is the same for both kinds.
func (d *Driver) CreateReadWrite(id, parent string, opts *driver.CreateOpts) error {
	return d.create(id, parent, opts)
}

// create is all or nothing: when it fails, neither the layer dir nor a
// short link of it is left. Create, CreateReadWrite, a staged Commit and
// an Additional Layer Store's CreateAs all come here, so the reserved ids
// are refused in one place.
func (d *Driver) create(id, parent string, opts *driver.CreateOpts) (retErr error) {
	if err := checkID(id); err != nil {
		return err
	}
	if parent != "" {
		if err := checkID(parent); err != nil {
			return fmt.Errorf("parent of layer %s: %w", id, err)
		}
	}
	if err := d.checkWritable(id, "create"); err != nil {
		return err
	}
	if opts != nil {
		for key := range opts.StorageOpt {
			return fmt.Errorf("layer %s: storage option %q: %w", id, key, driver.ErrNotSupported)
		}
	}

	// A parentless root starts 0555 root:root; a child's starts as its
	// parent's root (DESIGN.md, apply rules).
	rootMode, rootUID, rootGID := uint32(0o555), 0, 0
	var lowerIDs, lowerLinks []string
	if parent != "" {
		var st unix.Stat_t
		if err := unix.Stat(d.diffDir(parent), &st); err != nil {
			return fmt.Errorf("parent %s of layer %s: %w", parent, id, layerErr(err))
		}
		rootMode, rootUID, rootGID = st.Mode&0o7777, int(st.Uid), int(st.Gid)
		short, err := d.readShort(parent)
		if err != nil {
			return fmt.Errorf("parent %s of layer %s: %w", parent, id, layerErr(err))
		}
		grand, err := d.lowerIDs(parent)
		if err != nil {
			return fmt.Errorf("parent %s of layer %s: %w", parent, id, err)
		}
		lowerIDs = append([]string{parent}, grand...)
		lowerLinks = []string{shortLinkRel(short)}
		// The parent's own lower file already lists the grandparents' links.
		b, err := os.ReadFile(d.lowerFile(parent))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("parent %s of layer %s: %w", parent, id, err)
		}
		lowerLinks = append(lowerLinks, splitList(string(b))...)
		if len(lowerLinks) != len(lowerIDs) {
			return fmt.Errorf("parent %s of layer %s: %s lists %d layers, %s %d: %w",
				parent, id, lowerFileName, len(lowerLinks)-1, lowerLayersName, len(grand),
				driver.ErrStoreCorrupt)
		}
	}

	if err := os.Mkdir(d.layerDir(id), 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("layer %s: %w", id, driver.ErrLayerExists)
		}
		return fmt.Errorf("layer %s: %w", id, err)
	}
	var short string
	defer func() {
		if retErr == nil {
			return
		}
		if short != "" {
			_ = os.Remove(d.shortLinkPath(short))
		}
		_ = os.RemoveAll(d.layerDir(id))
	}()

	if err := mkdirOwned(d.diffDir(id), rootMode, rootUID, rootGID); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	for _, dir := range []string{d.workDir(id), d.mergedDir(id), d.emptyDir(id)} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
	}
	if parent != "" {
		if err := os.WriteFile(d.lowerFile(id), []byte(strings.Join(lowerLinks, ":")), 0o644); err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
		if err := os.WriteFile(d.lowerLayersFile(id), []byte(strings.Join(lowerIDs, ":")), 0o644); err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
	}

	var err error
	if short, err = d.makeShortLink(id); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	return nil
}

// mkdirOwned makes dir with exactly mode (umask, setuid, setgid and
// sticky bits included) and owner.
func mkdirOwned(dir string, mode uint32, uid, gid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	if err := unix.Chmod(dir, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}

// makeShortLink records a fresh short name in the layer's link file, then
// creates l/<short> -> ../<id>/diff. The link file comes first so that a
// crash in between leaves a link that New can rebuild.
func (d *Driver) makeShortLink(id string) (string, error) {
	for range 10 {
		short := randomShort()
		if _, err := os.Lstat(d.shortLinkPath(short)); err == nil {
			continue
		}
		if err := os.WriteFile(d.linkFile(id), []byte(short), 0o644); err != nil {
			return "", err
		}
		err := os.Symlink(shortLinkTarget(id), d.shortLinkPath(short))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return short, nil
	}
	return "", errors.New("no free short link name after 10 tries")
}

// randomShort returns 26 random characters of [A-Z0-9].
func randomShort() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, shortLinkLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// lowerIDs returns the parents of layer id, nearest first, from its
// lower-layers file, or, for a layer written by a program that only writes
// lower, from the targets of the short links listed there.
func (d *Driver) lowerIDs(id string) ([]string, error) {
	b, err := os.ReadFile(d.lowerLayersFile(id))
	if err == nil {
		ids := splitList(string(b))
		for _, p := range ids {
			if err := checkID(p); err != nil {
				return nil, fmt.Errorf("layer %s: %s: %w", id, d.lowerLayersFile(id), err)
			}
		}
		return ids, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}

	b, err = os.ReadFile(d.lowerFile(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	var ids []string
	for _, rel := range splitList(string(b)) {
		short, ok := strings.CutPrefix(rel, linkDirName+"/")
		if !ok || !validShort(short) {
			return nil, fmt.Errorf("layer %s: lower entry %q is not a short link: %w",
				id, rel, driver.ErrStoreCorrupt)
		}
		target, err := os.Readlink(d.shortLinkPath(short))
		if err != nil {
			return nil, fmt.Errorf("layer %s: parent link %s: %w", id, rel, layerErr(err))
		}
		p, ok := strings.CutPrefix(target, "../")
		p, ok2 := strings.CutSuffix(p, "/"+diffName)
		if !ok || !ok2 || checkID(p) != nil {
			return nil, fmt.Errorf("layer %s: short link %s points to %q: %w",
				id, rel, target, driver.ErrStoreCorrupt)
		}
		ids = append(ids, p)
	}
	return ids, nil
}

// splitList splits a ':' list, ignoring surrounding white space.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, ":")
}

// layerErr turns "no such file" into ErrLayerUnknown, keeping the path.
func layerErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", err, driver.ErrLayerUnknown)
	}
	return err
}

// Exists reports whether layer id's diff exists (a dangling ALS link
// counts: the layer is known even when its store is away).
func (d *Driver) Exists(id string) bool {
	if checkID(id) != nil {
		return false
	}
	_, err := os.Lstat(d.diffDir(id))
	return err == nil
}

// DiffPath returns home/<id>/diff.
func (d *Driver) DiffPath(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if _, err := os.Lstat(d.diffDir(id)); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	return d.diffDir(id), nil
}

// Remove unmounts layer id if it is mounted and deletes its short link and
// directory. Symlinks are removed, never followed: an ALS layer's diff is a
// link into the store, whose files stay.
func (d *Driver) Remove(id string) error {
	if err := driver.ValidateID(id); err != nil {
		return err
	}
	if checkID(id) != nil {
		// A reserved id names the driver's own dir, never a layer: there
		// is no such layer to remove (the store undoes a refused create
		// this way), and the dir must stay.
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	if _, err := os.Lstat(d.layerDir(id)); errors.Is(err, fs.ErrNotExist) {
		delete(d.counts, id)
		return nil
	}
	if err := d.checkWritable(id, "remove"); err != nil {
		return err
	}
	if err := d.unmountLocked(id); err != nil {
		return err
	}
	delete(d.counts, id)

	if short, err := d.readShort(id); err == nil {
		if err := os.Remove(d.shortLinkPath(short)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("layer %s: %w", id, err)
		}
	}
	alsDir, _ := os.ReadFile(d.additionalLayerFile(id))
	if err := os.RemoveAll(d.layerDir(id)); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if len(alsDir) > 0 && d.releaseAdditional != nil {
		d.releaseAdditional(id, strings.TrimSpace(string(alsDir)))
	}
	return nil
}

// rebuildShortLinks recreates every l/<short> link that a layer's link
// file names but that is missing or wrong (a store copied without l/,
// or a crash during Create), and records each one for Recovered.
func (d *Driver) rebuildShortLinks() error {
	entries, err := os.ReadDir(d.home)
	if err != nil {
		return fmt.Errorf("overlay home: %w", err)
	}
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || id == linkDirName || checkID(id) != nil {
			continue
		}
		short, err := d.readShort(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			d.logger.Warn("layer has a damaged link file; its short link is not rebuilt",
				"layer", id, "err", err)
			continue
		}
		target, err := os.Readlink(d.shortLinkPath(short))
		if err == nil && target == shortLinkTarget(id) {
			continue
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(d.shortLinkPath(short))
		}
		if err := os.Symlink(shortLinkTarget(id), d.shortLinkPath(short)); err != nil {
			return fmt.Errorf("layer %s: rebuild short link: %w", id, err)
		}
		d.logger.Debug("rebuilt short link", "layer", id, "link", short)
		d.recovered = append(d.recovered, fmt.Sprintf("layer %s: short link %s -> %s rebuilt",
			id, shortLinkRel(short), shortLinkTarget(id)))
	}
	return nil
}

// Recovered returns what New repaired by itself: one line per short link
// it rebuilt, naming the layer. The layer store reports them (kind
// "driver-repair") in Check.
func (d *Driver) Recovered() []string { return slices.Clone(d.recovered) }
