package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
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
// the top layer. Layers the store already has on the same parent are
// reused; the others come from an Additional Layer Store when one offers
// them, or are applied. Applying runs ahead, up to GOMAXPROCS layers at
// once, into the driver's staging area (layers.Store.Stage); the staged
// layers are committed in image order, since each names the one below as
// its parent.
func (imp *imageImport) run() (string, error) {
	parent := ""
	total := len(imp.img.Layers)
	// Reuse stops at the first layer the store lacks: nothing above a new
	// layer can be in the store already.
	first := 0
	for ; first < total; first++ {
		l := imp.img.Layers[first]
		id, ok, err := imp.reuse(parent, l.DiffID)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		fmt.Fprintf(imp.g.stdout, "%s reused %s\n", imp.label(first), id)
		parent = id
	}

	als := make([]*layers.AdditionalLayer, total)
	defer func() {
		for _, h := range als {
			if h != nil {
				h.Release()
			}
		}
	}()
	var ahead []int // layers to stage ahead of their commit
	_, canStage := imp.s.Driver().(driver.StagingDriver)
	for i := first; i < total; i++ {
		als[i] = imp.lookupAdditional(imp.img.Layers[i])
		if als[i] == nil && canStage {
			ahead = append(ahead, i)
		}
	}
	st := imp.startStaging(ahead)
	defer st.stop()

	for i := first; i < total; i++ {
		l := imp.img.Layers[i]
		if als[i] != nil {
			id, ok := imp.putAdditional(als[i], parent, l)
			als[i].Release()
			als[i] = nil
			if ok {
				imp.created = append(imp.created, id)
				fmt.Fprintf(imp.g.stdout, "%s from additional layer store %s\n", imp.label(i), id)
				parent = id
				continue
			}
		}
		opts := layers.PutOptions{
			Parent:                     parent,
			ExpectedCompressedDigest:   l.Digest,
			ExpectedUncompressedDigest: l.DiffID,
		}
		var layer *layers.Layer
		var err error
		if staged, ok := st.result(i); ok {
			if staged.err != nil {
				return "", fmt.Errorf("layer %d (%s): %w", i+1, l.DiffID, staged.err)
			}
			layer, err = imp.s.PutStaged(opts, staged.layer)
		} else {
			layer, err = imp.put(i, opts)
		}
		if err != nil {
			return "", fmt.Errorf("layer %d (%s): %w", i+1, l.DiffID, err)
		}
		imp.created = append(imp.created, layer.ID)
		fmt.Fprintf(imp.g.stdout, "%s applied %s\n", imp.label(i), layer.ID)
		parent = layer.ID
	}
	return parent, nil
}

// label names layer i in progress and result lines.
func (imp *imageImport) label(i int) string {
	l := imp.img.Layers[i]
	return fmt.Sprintf("layer %d/%d %s", i+1, len(imp.img.Layers), short(l.DiffID))
}

// put imports layer i with one Store.Put: for a layer an Additional Layer
// Store failed to give, and with a driver that cannot stage.
func (imp *imageImport) put(i int, opts layers.PutOptions) (*layers.Layer, error) {
	rc, err := imp.img.OpenLayer(i)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	bar := imp.progress.start(imp.label(i), imp.img.Layers[i].Size)
	layer, err := imp.s.Put(opts, io.TeeReader(rc, bar))
	bar.done(err)
	return layer, err
}

// stageOne applies layer i into the driver's staging area.
func (imp *imageImport) stageOne(i int) (*layers.StagedLayer, error) {
	l := imp.img.Layers[i]
	rc, err := imp.img.OpenLayer(i)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	bar := imp.progress.start(imp.label(i), l.Size)
	staged, err := imp.s.Stage(layers.StageOptions{
		ExpectedCompressedDigest:   l.Digest,
		ExpectedUncompressedDigest: l.DiffID,
	}, io.TeeReader(rc, bar))
	bar.done(err)
	return staged, err
}

// stagedResult is the outcome of staging one layer.
type stagedResult struct {
	layer *layers.StagedLayer
	err   error
}

// stager stages layers in image order, GOMAXPROCS at a time.
type stager struct {
	results map[int]chan stagedResult // one per layer to stage, buffered; not changed once started
	taken   map[int]bool              // results the import took (its goroutine only)
	quit    chan struct{}
	wg      sync.WaitGroup
}

// startStaging starts staging the layers at indexes idx.
func (imp *imageImport) startStaging(idx []int) *stager {
	st := &stager{results: map[int]chan stagedResult{}, taken: map[int]bool{}, quit: make(chan struct{})}
	jobs := make(chan int, len(idx))
	for _, i := range idx {
		st.results[i] = make(chan stagedResult, 1)
		jobs <- i
	}
	close(jobs)
	for range min(runtime.GOMAXPROCS(0), len(idx)) {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			for i := range jobs {
				select {
				case <-st.quit:
					st.results[i] <- stagedResult{err: errImportStopped}
					continue
				default:
				}
				layer, err := imp.stageOne(i)
				st.results[i] <- stagedResult{layer: layer, err: err}
			}
		}()
	}
	return st
}

var errImportStopped = errors.New("import stopped")

// result waits for layer i's staging; ok is false when it was not staged
// ahead.
func (st *stager) result(i int) (stagedResult, bool) {
	ch, ok := st.results[i]
	if !ok || st.taken[i] {
		return stagedResult{}, false
	}
	st.taken[i] = true
	return <-ch, true
}

// stop lets the running stagings finish, starts no more, and discards
// every staged layer nobody took.
func (st *stager) stop() {
	close(st.quit)
	st.wg.Wait()
	for i, ch := range st.results {
		if st.taken[i] {
			continue
		}
		if r := <-ch; r.layer != nil {
			r.layer.Discard()
		}
	}
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

// lookupAdditional asks the Additional Layer Stores for layer l; they are
// asked by TOC digest only, so only eStargz layers can come from there.
// The caller releases the handle.
func (imp *imageImport) lookupAdditional(l image.Layer) *layers.AdditionalLayer {
	toc := digest.Digest(l.Annotations[image.AnnotationTOCDigest])
	if toc == "" || toc.Validate() != nil {
		return nil
	}
	als, err := imp.s.LookupAdditionalLayer(toc, imp.img.Ref)
	if err != nil {
		imp.g.logger.Debug("additional layer store has no such layer", "toc", toc, "err", err)
		return nil
	}
	return als
}

// putAdditional creates the layer from the Additional Layer Store's
// offer; when that fails the caller applies the blob instead.
func (imp *imageImport) putAdditional(als *layers.AdditionalLayer, parent string, l image.Layer) (string, bool) {
	if d := als.UncompressedDigest(); d != "" && d != l.DiffID {
		imp.g.logger.Warn("additional layer store offers another diff digest; applying the blob",
			"toc", l.Annotations[image.AnnotationTOCDigest], "offered", d, "want", l.DiffID)
		return "", false
	}
	layer, err := als.PutAs("", parent, nil)
	if err != nil {
		imp.g.logger.Warn("creating a layer from the additional layer store failed; applying the blob",
			"toc", l.Annotations[image.AnnotationTOCDigest], "err", err)
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
// terminal while one layer is being applied, a line per layer and event
// otherwise (several layers apply at once). Bars of different goroutines
// share it.
type progress struct {
	w        io.Writer
	terminal bool

	mu     sync.Mutex // guards the writes and active
	active int        // bars started and not done
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
	drawn     bool // this bar owns the terminal line
	began     time.Time
}

// start begins reporting a layer of total bytes.
func (p *progress) start(label string, total int64) *progressBar {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active++
	b := &progressBar{p: p, label: label, total: total, began: time.Now()}
	if !p.terminal || p.active > 1 {
		p.endLine()
		fmt.Fprintf(p.w, "%s: applying %s\n", label, humanSize(total))
	}
	return b
}

// endLine ends a bar line left open on the terminal. Caller holds p.mu.
func (p *progress) endLine() {
	if p.terminal && p.active > 1 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// Write counts bytes read from the blob.
func (b *progressBar) Write(data []byte) (int, error) {
	b.n += int64(len(data))
	if b.p.terminal && time.Since(b.lastDrawn) > 100*time.Millisecond {
		b.p.mu.Lock()
		if b.p.active == 1 {
			b.draw()
		}
		b.p.mu.Unlock()
	}
	return len(data), nil
}

// draw redraws the bar line in place. Caller holds p.mu.
func (b *progressBar) draw() {
	b.lastDrawn = time.Now()
	b.drawn = true
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
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	elapsed := time.Since(b.began).Round(time.Millisecond)
	alone := b.p.active == 1
	b.p.active--
	if b.p.terminal && alone && err == nil {
		b.draw()
		fmt.Fprintln(b.p.w)
		return
	}
	if b.p.terminal && b.drawn {
		fmt.Fprint(b.p.w, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(b.p.w, "%s: failed after %s\n", b.label, humanSize(b.n))
		return
	}
	fmt.Fprintf(b.p.w, "%s: done, %s in %s\n", b.label, humanSize(b.n), elapsed)
}
