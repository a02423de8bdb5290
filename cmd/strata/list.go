package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stratafs/strata/layers"
)

var layersVerb = verb{
	name:    "layers",
	args:    "[--json]",
	summary: "List the layers of the store",
	example: "strata layers --json",
	minArgs: 0,
	maxArgs: 0,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the layer records as a JSON array")

		return func(g *globals, _ []string) error {
			return withExistingStore(g, func(s *layers.Store) error {
				list, err := s.List()
				if err != nil {
					return err
				}
				if *asJSON {
					if list == nil {
						list = []layers.Layer{}
					}
					return writeJSON(g.stdout, list)
				}
				return writeLayerTable(g.stdout, list)
			})
		}
	},
}

// writeLayerTable prints one line per layer with short ids.
func writeLayerTable(w io.Writer, list []layers.Layer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAMES\tPARENT\tSIZE\tCREATED")
	for _, l := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortID(l.ID), orDash(strings.Join(l.Names, ",")),
			orDash(shortID(l.Parent)), sizeOrUnknown(l.UncompressedSize), formatTime(l.Created))
	}
	return tw.Flush()
}

var layerVerb = verb{
	name:    "layer",
	args:    "[--json] L",
	summary: "Show the details of one layer",
	example: "strata layer --json app",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the layer record as JSON")

		return func(g *globals, args []string) error {
			return withExistingStore(g, func(s *layers.Store) error {
				l, err := s.Get(args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(g.stdout, l)
				}
				mounts, err := s.MountCount(l.ID)
				if err != nil {
					return err
				}
				return writeLayerDetails(g.stdout, l, mounts)
			})
		}
	},
}

// writeLayerDetails prints a layer record as "key: value" lines.
func writeLayerDetails(w io.Writer, l *layers.Layer, mounts int) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(key string, value any) { fmt.Fprintf(tw, "%s:\t%v\n", key, value) }

	row("ID", l.ID)
	row("Names", orDash(strings.Join(l.Names, ", ")))
	row("Parent", orDash(l.Parent))
	row("Created", formatTime(l.Created))
	row("Read-only", l.ReadOnly)
	row("Diff digest", orDash(string(l.UncompressedDigest)))
	row("Diff size", exactSize(l.UncompressedSize))
	row("Compressed digest", orDash(string(l.CompressedDigest)))
	row("Compressed size", exactSize(l.CompressedSize))
	row("Compression", l.CompressionType)
	if l.TOCDigest != "" {
		row("TOC digest", l.TOCDigest)
	}
	row("UIDs", orDash(joinIDs(l.UIDs)))
	row("GIDs", orDash(joinIDs(l.GIDs)))
	if l.MountLabel != "" {
		row("Mount label", l.MountLabel)
	}
	row("Mounts", mounts)
	return tw.Flush()
}

// exactSize is "BYTES (HUMAN)", or "unknown" for a negative size.
func exactSize(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d (%s)", n, humanSize(n))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shortID is the first 12 characters of id, the length people type.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func joinIDs(ids []uint32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}
