package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/stratafs/strata/layers"
)

// errInconsistent makes "strata check" exit 1 when it found problems it
// did not repair.
var errInconsistent = errors.New("store is inconsistent (run strata check --repair)")

// errUnrepaired makes "strata check --repair" exit 1 when some problems
// are left for a person (files without a record, an emptied layers.json).
var errUnrepaired = errors.New("store has problems check --repair does not fix (see above)")

var checkVerb = verb{
	name: "check",
	args: "[--repair]",
	summary: "Report (with --repair: fix) what a crash or a hand edit left: records without files, " +
		"stale or leaked mounts, a corrupt mountpoints.json; files without a record are only reported",
	example: "strata check --repair",
	minArgs: 0,
	maxArgs: 0,
	setup: func(fs *flag.FlagSet) runFunc {
		repair := fs.Bool("repair", false, "fix what is found")
		return func(g *globals, _ []string) error {
			open := withExistingStore // only reading: a missing store is an error
			if *repair {
				open = withStore
			}
			return open(g, func(s *layers.Store) error {
				problems, err := s.Check(*repair)
				for _, p := range problems {
					fmt.Fprintln(g.stdout, p)
				}
				if err != nil {
					return err
				}
				// Problems the store's open repaired are printed, marked
				// "(repaired at open)", but are no failure.
				for _, p := range problems {
					if p.Repaired {
						continue
					}
					if *repair {
						return errUnrepaired
					}
					return errInconsistent
				}
				return nil
			})
		}
	},
}
