package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/stratafs/strata/archive"
	"github.com/stratafs/strata/driver"
)

// ApplyDiff applies an uncompressed layer tar to layer id's diff dir with
// archive.Apply (whiteouts in overlay form). On error the diff dir holds
// part of the tar; the layer store removes the layer.
func (d *Driver) ApplyDiff(id string, opts driver.ApplyDiffOpts) (driver.ApplyResult, error) {
	if err := checkID(id); err != nil {
		return driver.ApplyResult{}, err
	}
	if opts.Diff == nil {
		return driver.ApplyResult{}, fmt.Errorf("layer %s: no diff to apply: %w", id, driver.ErrInvalidArgument)
	}
	if err := d.checkWritable(id, "apply diff"); err != nil {
		return driver.ApplyResult{}, err
	}
	if _, err := os.Lstat(d.diffDir(id)); err != nil {
		return driver.ApplyResult{}, fmt.Errorf("layer %s: %w", id, layerErr(err))
	}
	// An ALS layer's diff is the store's directory, which is not ours to
	// write.
	if _, err := os.Lstat(d.additionalLayerFile(id)); !errors.Is(err, fs.ErrNotExist) {
		return driver.ApplyResult{}, fmt.Errorf("layer %s comes from an additional layer store: apply: %w",
			id, driver.ErrNotSupported)
	}

	logger := opts.Logger
	if logger == nil {
		logger = d.logger
	}
	res, err := archive.Apply(d.diffDir(id), opts.Diff, archive.Options{Logger: logger})
	if err != nil {
		return driver.ApplyResult{}, fmt.Errorf("layer %s: %w", id, err)
	}
	return driver.ApplyResult{UIDs: res.UIDs, GIDs: res.GIDs}, nil
}
