package main

import (
	"flag"
	"fmt"

	"github.com/stratafs/strata/layers"
)

var mountVerb = verb{
	name:    "mount",
	args:    "[--opt O]... [--read-only] L",
	summary: "Mount a layer with its parents and print the mount point",
	example: "strata mount --opt nodev scratch",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		var opts stringList
		fs.Var(&opts, "opt", "mount option `O`, such as nodev or volatile (repeatable)")
		readOnly := fs.Bool("read-only", false, "mount without an upper directory (imported layers always are)")

		return func(g *globals, args []string) error {
			return withStore(g, func(s *layers.Store) error {
				path, err := s.Mount(args[0], layers.MountOptions{ReadOnly: *readOnly, Options: opts})
				if err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, path)
				return nil
			})
		}
	},
}

var unmountVerb = verb{
	name:    "unmount",
	args:    "[--force] L",
	summary: "Drop one user of a layer's mount; unmount it when none is left",
	example: "strata unmount scratch",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		force := fs.Bool("force", false, "unmount now, whatever the count of users")

		return func(g *globals, args []string) error {
			return withStore(g, func(s *layers.Store) error {
				still, err := s.Unmount(args[0], *force)
				if err != nil {
					return err
				}
				if still {
					fmt.Fprintf(g.stdout, "%s is still mounted for other users\n", args[0])
				}
				return nil
			})
		}
	},
}
