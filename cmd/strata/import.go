package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/stratafs/strata/layers"
)

var importVerb = verb{
	name:    "import",
	args:    "[--parent L] [--name N]... [--max-size SIZE] FILE|-",
	summary: "Import a layer tar (plain, gzip, zstd or bzip2) from FILE or standard input",
	example: "strata import --parent base --name app app-layer.tar.gz",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		parent, names := newLayerFlags(fs, "")
		maxSize := maxSizeFlag(fs)

		return func(g *globals, args []string) error {
			g.maxDiffSize = *maxSize
			return runImport(g, args[0], *parent, *names)
		}
	},
}

// runImport puts the tar in path ("-" for standard input) as a new layer
// and prints a summary line, then the new id as the last line.
func runImport(g *globals, path, parent string, names []string) error {
	var diff io.Reader = g.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		diff = f
	}

	return withStore(g, func(s *layers.Store) error {
		layer, err := s.Put(layers.PutOptions{Parent: parent, Names: names}, diff)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		printImportSummary(g.stdout, layer)
		return nil
	})
}

// printImportSummary prints the digests and sizes of a new layer on one
// line, then its id on the last line, where scripts take it from.
func printImportSummary(w io.Writer, layer *layers.Layer) {
	fmt.Fprintf(w, "diff %s %s", layer.UncompressedDigest, sizeOrUnknown(layer.UncompressedSize))
	if layer.CompressionType == layers.Compression(0) {
		fmt.Fprintf(w, ", not compressed\n")
	} else {
		fmt.Fprintf(w, ", %v %s %s\n", layer.CompressionType, layer.CompressedDigest,
			humanSize(layer.CompressedSize))
	}
	fmt.Fprintln(w, layer.ID)
}

var createVerb = verb{
	name:    "create",
	args:    "[--parent L] [--name N]... [--read-only]",
	summary: "Create an empty layer, writable unless --read-only, and print its id",
	example: "strata create --parent app --name scratch",
	minArgs: 0,
	maxArgs: 0,
	setup: func(fs *flag.FlagSet) runFunc {
		parent, names := newLayerFlags(fs, "")
		readOnly := fs.Bool("read-only", false, "create a read-only layer")

		return func(g *globals, _ []string) error {
			return withStore(g, func(s *layers.Store) error {
				layer, err := s.Create(layers.CreateOptions{
					Parent:   *parent,
					Names:    *names,
					ReadOnly: *readOnly,
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, layer.ID)
				return nil
			})
		}
	},
}

// sizeOrUnknown is humanSize, or "unknown" for the -1 of a layer whose
// size is not known (one from an additional layer store).
func sizeOrUnknown(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return humanSize(n)
}

// humanSize formats a byte count with a binary unit.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
