package main

import (
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
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
// The tar goes to a temporary file next to output that replaces output
// only once the export succeeded: on any failure output is left as it was
// and the temporary file is removed.
func runDiff(g *globals, ref, output, compress string) (err error) {
	w := g.stdout
	if output != "" && output != "-" {
		if fi, serr := os.Stat(output); serr == nil && fi.IsDir() {
			return fmt.Errorf("diff -o %s: is a directory", output)
		}
		tmp, cerr := createOutputTemp(output)
		if cerr != nil {
			return fmt.Errorf("diff -o %s: %w", output, cerr)
		}
		defer func() {
			if err == nil {
				err = tmp.Close()
				if err == nil {
					err = os.Rename(tmp.Name(), output)
				}
				if err != nil {
					err = fmt.Errorf("diff -o %s: %w", output, err)
				}
			} else {
				tmp.Close()
			}
			if err != nil {
				os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}

	var zw io.WriteCloser
	switch compress {
	case "gzip":
		zw = gzip.NewWriter(w)
	case "zstd":
		enc, zerr := zstd.NewWriter(w)
		if zerr != nil {
			return zerr
		}
		zw = enc
	}
	tarOut := w
	if zw != nil {
		tarOut = zw
	}

	return withExistingStore(g, func(s *layers.Store) error {
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

// createOutputTemp creates an empty temporary file in the directory of
// output. Unlike os.CreateTemp it asks for mode 0666, so the file that
// replaces output gets the umask's mode as any file a shell creates.
func createOutputTemp(output string) (*os.File, error) {
	dir, base := filepath.Split(output)
	if dir == "" {
		dir = "."
	}
	for {
		name := filepath.Join(dir, fmt.Sprintf(".%s.strata-%d", base, rand.Uint32()))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}
