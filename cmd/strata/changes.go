package main

import (
	"flag"
	"fmt"

	"github.com/stratafs/strata/layers"
)

var changesVerb = verb{
	name:    "changes",
	args:    "L",
	summary: "List the paths layer L adds (A), changes (C) or deletes (D) on top of its parents",
	example: "strata changes app",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return func(g *globals, args []string) error {
			return withExistingStore(g, func(s *layers.Store) error {
				changes, err := s.Changes(args[0])
				if err != nil {
					return err
				}
				for _, c := range changes {
					if _, err := fmt.Fprintf(g.stdout, "%s %s\n", c.Kind, c.Path); err != nil {
						return err
					}
				}
				return nil
			})
		}
	},
}
