package main

import (
	"flag"
	"fmt"

	"github.com/stratafs/strata/layers"
)

var rmVerb = verb{
	name:    "rm",
	args:    "L",
	summary: "Delete a layer that has no children and is not mounted",
	example: "strata rm scratch",
	minArgs: 1,
	maxArgs: 1,
	setup: func(*flag.FlagSet) runFunc {
		return func(g *globals, args []string) error {
			return withStore(g, func(s *layers.Store) error {
				l, err := s.Get(args[0])
				if err != nil {
					return err
				}
				if err := s.Delete(l.ID); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, l.ID)
				return nil
			})
		}
	},
}

var namesVerb = verb{
	name:    "names",
	args:    "L [N...]",
	summary: "Set a layer's names to exactly N... (none: remove all names)",
	example: "strata names 3f4e5a6b7c8d base debian-base",
	minArgs: 1,
	maxArgs: -1,
	setup: func(*flag.FlagSet) runFunc {
		return func(g *globals, args []string) error {
			return withStore(g, func(s *layers.Store) error {
				return s.SetNames(args[0], args[1:])
			})
		}
	},
}
