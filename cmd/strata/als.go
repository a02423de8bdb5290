package main

import (
	"errors"
	"flag"
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/layers"
)

// alsVerb answers "strata als lookup|put": ask the Additional Layer Stores
// given with --als for a layer by TOC digest.
var alsVerb = verb{
	name: "als",
	args: "lookup --ref REF DIGEST | put [--parent L] [--name N]... --ref REF DIGEST",
	summary: "Look up a layer in the additional layer stores (--als) and print its info, " +
		"or put it in the store and print the new id",
	example: "strata --als /var/lib/stargz-store/store:ref als put --ref docker.io/library/busybox:latest sha256:...",
	minArgs: 2,
	maxArgs: 2,
	setup: func(fs *flag.FlagSet) runFunc {
		ref := fs.String("ref", "", "image reference `REF` the layer belongs to")
		parent, names := newLayerFlags(fs, "put: ")

		return func(g *globals, args []string) error {
			switch args[0] {
			case "lookup":
				if *parent != "" || len(*names) > 0 {
					return &usageError{msg: "--parent and --name go with put, not lookup"}
				}
				return runALSLookup(g, *ref, args[1])
			case "put":
				return runALSPut(g, *ref, args[1], *parent, *names)
			}
			return &usageError{msg: fmt.Sprintf("unknown als action %q (want lookup or put)", args[0])}
		}
	},
}

// lookupALS finds layer dgst for ref in the configured stores and passes it
// to fn, releasing it afterwards. open is withStore, or withExistingStore
// when fn only reads.
func lookupALS(g *globals, open func(*globals, func(*layers.Store) error) error, ref, dgst string,
	fn func(*layers.Store, *layers.AdditionalLayer) error) error {
	if len(g.als) == 0 {
		return &usageError{msg: "no additional layer store given: use --als PATH[:ref] before the verb"}
	}
	return open(g, func(s *layers.Store) error {
		a, err := s.LookupAdditionalLayer(digest.Digest(dgst), ref)
		if err != nil {
			return err
		}
		defer a.Release()
		return fn(s, a)
	})
}

// runALSLookup prints the info record of layer dgst for ref.
func runALSLookup(g *globals, ref, dgst string) error {
	return lookupALS(g, withExistingStore, ref, dgst, func(_ *layers.Store, a *layers.AdditionalLayer) error {
		fmt.Fprintf(g.stdout, "%s\n", a.InfoJSON())
		return nil
	})
}

// runALSPut creates a layer from layer dgst for ref and prints its id.
func runALSPut(g *globals, ref, dgst, parent string, names []string) error {
	return lookupALS(g, withStore, ref, dgst, func(_ *layers.Store, a *layers.AdditionalLayer) error {
		l, err := a.PutAs("", parent, names)
		if err != nil {
			return err
		}
		fmt.Fprintln(g.stdout, l.ID)
		return nil
	})
}

// withALSImport adds --ref and --digest to the import verb: when an
// additional layer store offers that layer, the new layer is made from it
// and FILE is not read; otherwise FILE is imported as usual.
func withALSImport(v verb) verb {
	v.args = "[--ref REF --digest D] " + v.args
	v.summary += "; with --digest, take the layer from an additional layer store (--als) when one offers it"
	inner := v.setup
	v.setup = func(fs *flag.FlagSet) runFunc {
		ref := fs.String("ref", "", "image reference `REF` for the additional layer store lookup")
		dgst := fs.String("digest", "", "TOC digest `D` to look up in the additional layer stores")
		importFile := inner(fs)

		return func(g *globals, args []string) error {
			if *dgst == "" {
				if *ref != "" {
					return &usageError{msg: "--ref needs --digest"}
				}
				return importFile(g, args)
			}
			parent := fs.Lookup("parent").Value.String()
			var names []string
			if l, ok := fs.Lookup("name").Value.(*stringList); ok {
				names = *l
			}
			used := false
			var err error
			if len(g.als) > 0 {
				err = lookupALS(g, withStore, *ref, *dgst, func(_ *layers.Store, a *layers.AdditionalLayer) error {
					l, err := a.PutAs("", parent, names)
					if err != nil {
						return err
					}
					used = true
					fmt.Fprintf(g.stdout, "using layer %s from an additional layer store; %s not read\n",
						*dgst, args[0])
					fmt.Fprintln(g.stdout, l.ID)
					return nil
				})
			}
			if used || (err != nil && !errors.Is(err, driver.ErrLayerUnknown)) {
				return err
			}
			g.logger.Debug("no additional layer store offers the layer; importing the file",
				"digest", *dgst, "ref", *ref, "err", err)
			return importFile(g, args)
		}
	}
	return v
}
