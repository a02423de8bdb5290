package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/driver"
	"github.com/stratafs/strata/internal/image"
	"github.com/stratafs/strata/layers"
)

var importImageVerb = verb{
	name:    "import-image",
	args:    "[--name N] [--max-size SIZE] SOURCE",
	summary: "Import every layer of an image (OCI layout dir, oci-archive or docker-archive tar)",
	example: "strata import-image --name app:1 docker-archive:app.tar",
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		name := fs.String("name", "", "name the top layer `N` (default: the image's reference)")
		maxSize := maxSizeFlag(fs)

		return func(g *globals, args []string) error {
			g.maxDiffSize = *maxSize
			return runImportImage(g, args[0], *name)
		}
	},
}

// runImportImage imports the layers of the image at spec in order, reusing
// layers the store already has, and names the top layer. On failure every
// layer this run created is deleted again.
func runImportImage(g *globals, spec, name string) error {
	img, err := image.Open(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if name == "" {
		name = img.Ref
	}
	if len(img.Layers) == 0 {
		return fmt.Errorf("import-image %s: the image has no layers", spec)
	}

	return withStore(g, func(s *layers.Store) error {
		imp := &imageImport{g: g, s: s, img: img, progress: newProgress(g.stderr)}
		top, err := imp.run()
		if err != nil {
			imp.rollback()
			return fmt.Errorf("import-image %s: %w", spec, err)
		}
		if name != "" {
			if err := nameLayer(s, top, name); err != nil {
				imp.rollback()
				return fmt.Errorf("import-image %s: %w", spec, err)
			}
		}
		fmt.Fprintln(g.stdout, top)
		return nil
	})
}

// imageImport is one run of import-image.
type imageImport struct {
	g        *globals
	s        *layers.Store
	img      *image.Image
	progress *progress
	created  []string // ids this run created, in order
}

// run imports each layer on top of the previous one and returns the id of
// the top layer.
func (imp *imageImport) run() (string, error) {
	parent := ""
	total := len(imp.img.Layers)
	for i, l := range imp.img.Layers {
		label := fmt.Sprintf("layer %d/%d %s", i+1, total, short(l.DiffID))

		if id, ok, err := imp.reuse(parent, l.DiffID); err != nil {
			return "", err
		} else if ok {
			fmt.Fprintf(imp.g.stdout, "%s reused %s\n", label, id)
			parent = id
			continue
		}

		if id, ok := imp.fromAdditionalStore(parent, l); ok {
			imp.created = append(imp.created, id)
			fmt.Fprintf(imp.g.stdout, "%s from additional layer store %s\n", label, id)
			parent = id
			continue
		}

		rc, err := imp.img.OpenLayer(i)
		if err != nil {
			return "", err
		}
		bar := imp.progress.start(label, l.Size)
		layer, err := imp.s.Put(layers.PutOptions{
			Parent:                     parent,
			ExpectedCompressedDigest:   l.Digest,
			ExpectedUncompressedDigest: l.DiffID,
		}, io.TeeReader(rc, bar))
		rc.Close()
		bar.done(err)
		if err != nil {
			return "", fmt.Errorf("layer %d (%s): %w", i+1, l.DiffID, err)
		}
		imp.created = append(imp.created, layer.ID)
		fmt.Fprintf(imp.g.stdout, "%s applied %s\n", label, layer.ID)
		parent = layer.ID
	}
	return parent, nil
}

// reuse finds a layer with the same parent and diff digest.
func (imp *imageImport) reuse(parent string, diffID digest.Digest) (string, bool, error) {
	candidates, err := imp.s.ByDigest(diffID)
	if errors.Is(err, driver.ErrLayerUnknown) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	for _, c := range candidates {
		if c.Parent == parent && c.UncompressedDigest == diffID {
			return c.ID, true, nil
		}
	}
	return "", false, nil
}

// fromAdditionalStore creates the layer from an Additional Layer Store when
// one offers it; the store is asked by TOC digest only, so only eStargz
// layers can come from there.
func (imp *imageImport) fromAdditionalStore(parent string, l image.Layer) (string, bool) {
	toc := digest.Digest(l.Annotations[image.AnnotationTOCDigest])
	if toc == "" || toc.Validate() != nil {
		return "", false
	}
	als, err := imp.s.LookupAdditionalLayer(toc, imp.img.Ref)
	if err != nil {
		imp.g.logger.Debug("additional layer store has no such layer", "toc", toc, "err", err)
		return "", false
	}
	defer als.Release()
	if d := als.UncompressedDigest(); d != "" && d != l.DiffID {
		imp.g.logger.Warn("additional layer store offers another diff digest; applying the blob",
			"toc", toc, "offered", d, "want", l.DiffID)
		return "", false
	}
	layer, err := als.PutAs("", parent, nil)
	if err != nil {
		imp.g.logger.Warn("creating a layer from the additional layer store failed; applying the blob",
			"toc", toc, "err", err)
		return "", false
	}
	return layer.ID, true
}

// rollback deletes the layers this run created, newest first.
func (imp *imageImport) rollback() {
	for _, id := range slices.Backward(imp.created) {
		if err := imp.s.Delete(id); err != nil {
			imp.g.logger.Warn("removing a layer of the failed import", "layer", id, "err", err)
		}
	}
	imp.created = nil
}

// nameLayer adds name to layer id; a layer that had the name loses it, as
// an image tag moves to the newly imported image.
func nameLayer(s *layers.Store, id, name string) error {
	all, err := s.List()
	if err != nil {
		return err
	}
	for _, l := range all {
		if l.ID != id && slices.Contains(l.Names, name) {
			kept := slices.DeleteFunc(slices.Clone(l.Names), func(n string) bool { return n == name })
			if err := s.SetNames(l.ID, kept); err != nil {
				return err
			}
		}
	}
	top, err := s.Get(id)
	if err != nil {
		return err
	}
	if slices.Contains(top.Names, name) {
		return nil
	}
	return s.SetNames(id, append(top.Names, name))
}

// short abbreviates a digest for progress lines.
func short(d digest.Digest) string {
	s := d.String()
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

// progress reports import progress on stderr: a bar redrawn in place on a
// terminal, a line per layer otherwise.
type progress struct {
	w        io.Writer
	terminal bool
}

// newProgress reports to w, drawing bars when w is a terminal.
func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.terminal = err == nil
	}
	return p
}

// progressBar counts the bytes of one layer.
type progressBar struct {
	p         *progress
	label     string
	total, n  int64
	lastDrawn time.Time
	began     time.Time
}

// start begins reporting a layer of total bytes.
func (p *progress) start(label string, total int64) *progressBar {
	b := &progressBar{p: p, label: label, total: total, began: time.Now()}
	if !p.terminal {
		fmt.Fprintf(p.w, "%s: applying %s\n", label, humanSize(total))
	}
	return b
}

// Write counts bytes read from the blob.
func (b *progressBar) Write(data []byte) (int, error) {
	b.n += int64(len(data))
	if b.p.terminal && time.Since(b.lastDrawn) > 100*time.Millisecond {
		b.draw()
	}
	return len(data), nil
}

// draw redraws the bar line in place.
func (b *progressBar) draw() {
	b.lastDrawn = time.Now()
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = min(float64(b.n)/float64(b.total), 1)
	}
	filled := int(frac * width)
	fmt.Fprintf(b.p.w, "\r%s [%s%s] %3.0f%% %s/%s", b.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		frac*100, humanSize(b.n), humanSize(b.total))
}

// done ends the layer's report.
func (b *progressBar) done(err error) {
	elapsed := time.Since(b.began).Round(time.Millisecond)
	if b.p.terminal {
		b.draw()
		fmt.Fprintln(b.p.w)
		return
	}
	if err != nil {
		fmt.Fprintf(b.p.w, "%s: failed after %s\n", b.label, humanSize(b.n))
		return
	}
	fmt.Fprintf(b.p.w, "%s: done, %s in %s\n", b.label, humanSize(b.n), elapsed)
}
