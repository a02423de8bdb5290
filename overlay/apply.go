package overlay

import (
	"fmt"

	"github.com/stratafs/strata/driver"
)

// ApplyDiff applies an uncompressed layer tar to layer id's diff dir.
//
// Package archive does not have Apply yet, so this version refuses; it is
// replaced by the call to archive.Apply as soon as that lands.
func (d *Driver) ApplyDiff(id string, opts driver.ApplyDiffOpts) (driver.ApplyResult, error) {
	if err := driver.ValidateID(id); err != nil {
		return driver.ApplyResult{}, err
	}
	return driver.ApplyResult{}, fmt.Errorf("layer %s: apply: %w", id, driver.ErrNotSupported)
}
