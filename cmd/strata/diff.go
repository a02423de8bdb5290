package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/stratafs/strata/layers"
)

var diffVerb = verb{
	name:    "diff",
	args:    "[-o FILE] [--compress gzip|zstd] L",
	summary: "Write layer L as a tar: the exact imported bytes when it has a tar-split record",
	example: "strata diff -o app.tar app && sha256sum app.tar",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		output := fs.String("o", "", "write to `FILE` instead of standard output")
		compress := fs.String("compress", "", "compress the tar with `ALGO` (gzip or zstd)")

		return func(g *globals, args []string) error {
			switch *compress {
			case "", "gzip", "zstd":
			default:
				return &usageError{msg: fmt.Sprintf("unknown compression %q", *compress)}
			}
			return runDiff(g, args[0], *output, *compress)
		}
	},
}

// runDiff exports layer ref to output ("" or "-" for standard output).
// A failed export leaves no partial output file behind.
func runDiff(g *globals, ref, output, compress string) (err error) {
	w := g.stdout
	if output != "" && output != "-" {
		tmp, err := os.CreateTemp(filepath.Dir(output), ".strata-diff-*")
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
				return
			}
			if err = tmp.Close(); err == nil {
				err = os.Rename(tmp.Name(), output)
			}
		}()
		w = tmp
	}

	var zw io.WriteCloser
	switch compress {
	case "gzip":
		zw = gzip.NewWriter(w)
	case "zstd":
		enc, err := zstd.NewWriter(w)
		if err != nil {
			return err
		}
		zw = enc
	}
	tarOut := w
	if zw != nil {
		tarOut = zw
	}

	return withStore(g, func(s *layers.Store) error {
		source, err := s.Diff(ref, tarOut)
		if err != nil {
			return err
		}
		if zw != nil {
			if err := zw.Close(); err != nil {
				return err
			}
		}
		g.logger.Debug("diff written", "layer", ref, "source", string(source))
		return nil
	})
}
