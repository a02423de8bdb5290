package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratafs/strata/driver"
)

// Names inside the driver home and inside a layer directory (DESIGN.md,
// "Driver home"). Every path the driver touches is built by one of the
// functions below; callers validate the layer id with checkID
// first.
const (
	linkDirName        = "l"
	diffName           = "diff"
	workName           = "work"
	mergedName         = "merged"
	emptyName          = "empty"
	linkFileName       = "link"
	lowerFileName      = "lower"
	lowerLayersName    = "lower-layers"
	additionalLayerRef = "additionallayer"

	// shortLinkLen is the length of the names in l/.
	shortLinkLen = 26
	// maxStack is the most layers overlayfs stacks in one mount.
	maxStack = 500
)

// checkID is the one check of a layer id before any path is built from it:
// driver.ValidateID, and not one of the ids that are valid but name the
// driver's own dirs in the home (l, staging). Every method checks, Remove
// included, so a refused id can never lead to the removal of those dirs.
func checkID(id string) error {
	if err := driver.ValidateID(id); err != nil {
		return err
	}
	if id == linkDirName || id == stagingDirName {
		return fmt.Errorf("layer %s: the name is reserved for the overlay driver's own %s dir in its home: %w",
			id, id, driver.ErrInvalidArgument)
	}
	return nil
}

// linkDir is home/l, where the short links live.
func (d *Driver) linkDir() string { return filepath.Join(d.home, linkDirName) }

// layerDir is home/<id>.
func (d *Driver) layerDir(id string) string { return filepath.Join(d.home, id) }

// diffDir is home/<id>/diff, the layer's own files.
func (d *Driver) diffDir(id string) string { return filepath.Join(d.home, id, diffName) }

// workDir is home/<id>/work, the overlay workdir of a read-write mount.
func (d *Driver) workDir(id string) string { return filepath.Join(d.home, id, workName) }

// mergedDir is home/<id>/merged, the mount point.
func (d *Driver) mergedDir(id string) string { return filepath.Join(d.home, id, mergedName) }

// emptyDir is home/<id>/empty, the stand-in lower of a parentless layer.
func (d *Driver) emptyDir(id string) string { return filepath.Join(d.home, id, emptyName) }

// linkFile is home/<id>/link, holding the layer's short link name.
func (d *Driver) linkFile(id string) string { return filepath.Join(d.home, id, linkFileName) }

// lowerFile is home/<id>/lower, the parents as "l/SHORT" joined by ':'.
func (d *Driver) lowerFile(id string) string { return filepath.Join(d.home, id, lowerFileName) }

// lowerLayersFile is home/<id>/lower-layers, the parents' ids joined by ':'.
func (d *Driver) lowerLayersFile(id string) string {
	return filepath.Join(d.home, id, lowerLayersName)
}

// additionalLayerFile is home/<id>/additionallayer, present only for
// layers whose files live in an Additional Layer Store.
func (d *Driver) additionalLayerFile(id string) string {
	return filepath.Join(d.home, id, additionalLayerRef)
}

// shortLinkPath is home/l/<short>.
func (d *Driver) shortLinkPath(short string) string {
	return filepath.Join(d.home, linkDirName, short)
}

// shortLinkRel is "l/<short>", the form used in the lower file and in
// mount options, relative to the home.
func shortLinkRel(short string) string { return linkDirName + "/" + short }

// shortLinkTarget is what l/<short> points to: "../<id>/diff".
func shortLinkTarget(id string) string { return "../" + id + "/" + diffName }

// relDiff and relWork are the layer's upper and work dirs relative to the
// home, used for mount options so the home's own path never has to be
// expressed in them.
func relDiff(id string) string  { return id + "/" + diffName }
func relWork(id string) string  { return id + "/" + workName }
func relEmpty(id string) string { return id + "/" + emptyName }

// validShort reports whether s can be a short link name: it is read from
// disk, so it is checked before it becomes part of a path.
func validShort(s string) bool {
	if len(s) != shortLinkLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// readShort returns the short link name recorded for layer id.
func (d *Driver) readShort(id string) (string, error) {
	b, err := os.ReadFile(d.linkFile(id))
	if err != nil {
		return "", err
	}
	short := strings.TrimSpace(string(b))
	if !validShort(short) {
		return "", fmt.Errorf("layer %s: link file %s holds %q, not a short link name: %w",
			id, d.linkFile(id), short, driver.ErrStoreCorrupt)
	}
	return short, nil
}
