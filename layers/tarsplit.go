package layers

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"

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
// The record is written by internal/tarsplit's Recorder in the same pass:
// unlike tar-split's own input stream it does not parse the tar a second
// time, keeps a sparse entry as the tar stores it (tar-split's would read
// every hole as zeros: hours for a few KB of input) and accepts a repeated
// directory entry as the apply rules do.
type tarSplitRecorder struct {
	path   string
	file   *os.File
	gz     *gzip.Writer
	src    io.Reader
	rec    *tarsplit.Recorder
	closed bool
	err    error // the recorder's failure, or the stream's
}

func newTarSplitRecorder(path string, tarStream io.Reader) (*tarSplitRecorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tar-split: %w", err)
	}
	// The fastest level: the record is mostly base64 of headers and is read
	// back only on export, while its compression runs on every Put.
	gz, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tar-split: %w", err)
	}
	rec := tarsplit.NewRecorder(tarsplit.NewPacker(gz))
	return &tarSplitRecorder{path: path, file: f, gz: gz, src: tarStream, rec: rec}, nil
}

// WriteTo records the rest of the stream while copying it to w; io.Copy
// uses it, so the stream's chunks reach the recorder without a copy.
func (r *tarSplitRecorder) WriteTo(w io.Writer) (int64, error) {
	n, err := io.Copy(io.MultiWriter(r.rec, w), r.src)
	if err == nil {
		err = r.end()
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// Read returns the tar bytes, unchanged, recording them.
func (r *tarSplitRecorder) Read(p []byte) (int, error) {
	n, err := r.src.Read(p)
	if n > 0 {
		if _, werr := r.rec.Write(p[:n]); werr != nil {
			err = werr
		}
	}
	if err == io.EOF {
		if cerr := r.end(); cerr != nil {
			err = cerr
		}
	}
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// end tells the recorder the stream is over, once.
func (r *tarSplitRecorder) end() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.rec.Close()
}

// finish writes the file out once the reading has stopped. With abort set
// the consumer gave up and stopped the stream: the recorder's read error
// that follows is not a fault of the tar. It returns the recorder's own
// failure (the root cause when the tar was bad), or a failure to write
// the file.
func (r *tarSplitRecorder) finish(abort error) error {
	recErr := r.err
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
	if abort == nil && !r.closed {
		return fmt.Errorf("%w: the recorder stopped before the stream's end", errTarSplit)
	}
	if writeErr != nil {
		return fmt.Errorf("tar-split %s: %w", r.path, writeErr)
	}
	return nil
}
