package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/stratafs/strata/layers"
)

var statusVerb = verb{
	name:    "status",
	args:    "",
	summary: "Show facts about the store and its overlay driver",
	example: "strata --root /tmp/store status",
	minArgs: 0,
	maxArgs: 0,
	setup: func(*flag.FlagSet) runFunc {
		return func(g *globals, _ []string) error {
			return withExistingStore(g, func(s *layers.Store) error {
				list, err := s.List()
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "Graph root: %s\nRun root: %s\nDriver: %s\nLayers: %d\n",
					s.GraphRoot(), s.RunRoot(), s.Driver().Name(), len(list))
				for _, p := range s.Driver().Status() {
					fmt.Fprintf(g.stdout, "%s: %s\n", p.Key, strings.TrimSpace(p.Value))
				}
				return nil
			})
		}
	},
}
