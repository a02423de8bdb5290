package layers

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/vbatts/tar-split/tar/asm"

	"github.com/stratafs/strata/internal/tarsplit"
)

// errTarSplit marks a failure to parse the layer tar while recording its
// tar-split metadata.
var errTarSplit = errors.New("layer tar")

// tarSplitRecorder passes a layer tar through unchanged while writing its
// headers and padding, in the vbatts/tar-split JSON format gzip-compressed,
// to R/overlay-layers/<id>.tar-split.gz: the file containers/storage reads
// to export a layer byte for byte.
//
// The record is written by internal/tarsplit, which (unlike tar-split's own
// packer) accepts a repeated directory entry as the apply rules do.
type tarSplitRecorder struct {
	path   string
	file   *os.File
	gz     *gzip.Writer
	stream io.ReadCloser
	done   <-chan error
}

func newTarSplitRecorder(path string, tarStream io.Reader) (*tarSplitRecorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tar-split: %w", err)
	}
	gz := gzip.NewWriter(f)
	stream, done, err := asm.NewInputTarStreamWithDone(tarStream, tarsplit.NewPacker(gz), nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tar-split: %w", err)
	}
	return &tarSplitRecorder{path: path, file: f, gz: gz, stream: stream, done: done}, nil
}

// Read returns the tar bytes, unchanged.
func (r *tarSplitRecorder) Read(p []byte) (int, error) { return r.stream.Read(p) }

// finish waits for the recorder to stop and writes the file out. With
// abort set the consumer gave up: the stream is closed so the recorder
// stops early. It returns the recorder's own failure (the root cause when
// the tar was bad), or a failure to write the file.
func (r *tarSplitRecorder) finish(abort error) error {
	if abort != nil {
		r.stream.Close()
	}
	recErr := <-r.done
	if recErr != nil && errors.Is(recErr, io.ErrClosedPipe) {
		recErr = nil // our own abort, not a fault of the tar
	}
	if recErr != nil {
		recErr = fmt.Errorf("%w: %w", errTarSplit, recErr)
	}

	writeErr := r.gz.Close()
	if err := r.file.Sync(); writeErr == nil {
		writeErr = err
	}
	if err := r.file.Close(); writeErr == nil {
		writeErr = err
	}
	if recErr != nil {
		return recErr
	}
	if writeErr != nil {
		return fmt.Errorf("tar-split %s: %w", r.path, writeErr)
	}
	return nil
}
