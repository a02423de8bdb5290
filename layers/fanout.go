package layers

import (
	"io"
	"sync/atomic"
)

// The layer stream is read once, in chunks, by a producer goroutine and
// handed to two consumers: the applier (the caller's goroutine) and the
// tar-split recorder (a goroutine of its own). Passing whole chunks costs
// one hand-over per chunk, where a pipe between the recorder and the
// applier cost one per tar header (BENCHMARKS.md: a layer of hardlinks
// spent most of its time waking goroutines), and the recorder's parsing
// and gzip run on the other core.
const (
	fanoutChunkSize = 256 << 10
	fanoutChunks    = 8 // chunks in flight: bounds memory to 2 MiB
)

// chunk is a piece of the stream that both consumers read; the last one
// to release it returns it to the free list.
type chunk struct {
	data []byte
	n    int
	refs atomic.Int32
}

// fanout reads src in chunks and offers each to two chunkReaders.
type fanout struct {
	src   io.Reader
	free  chan *chunk
	quit  chan struct{}
	done  chan struct{} // closed when the producer has stopped
	err   error         // the producer's read error (not io.EOF); read after done
	apply *chunkReader
	split *chunkReader
}

// newFanout prepares the readers; start starts the producer. Once started,
// each reader must be read to its end or drained, and an early stop needs
// stop.
func newFanout(src io.Reader) *fanout {
	f := &fanout{
		src:  src,
		free: make(chan *chunk, fanoutChunks),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range fanoutChunks {
		f.free <- &chunk{data: make([]byte, fanoutChunkSize)}
	}
	f.apply = &chunkReader{f: f, ch: make(chan *chunk, fanoutChunks)}
	f.split = &chunkReader{f: f, ch: make(chan *chunk, fanoutChunks)}
	return f
}

// start runs the producer in its own goroutine.
func (f *fanout) start() { go f.produce() }

func (f *fanout) produce() {
	defer close(f.done)
	defer close(f.apply.ch)
	defer close(f.split.ch)
	for {
		var c *chunk
		select {
		case c = <-f.free:
		case <-f.quit:
			f.err = io.ErrClosedPipe
			return
		}
		n, err := fill(f.src, c.data)
		if n > 0 {
			c.n = n
			c.refs.Store(2)
			for _, r := range []*chunkReader{f.apply, f.split} {
				select {
				case r.ch <- c:
				case <-f.quit:
					f.err = io.ErrClosedPipe
					return
				}
			}
		} else {
			f.free <- c
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			f.err = err
			return
		}
	}
}

// fill reads into buf until it is full or src fails; io.EOF means the
// stream ended (possibly after some bytes). Unlike io.ReadFull it keeps a
// decompressor's own io.ErrUnexpectedEOF (a truncated stream) an error.
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stop makes the producer stop early (a no-op when it has finished) and
// waits for it.
func (f *fanout) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

func (f *fanout) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		f.free <- c
	}
}

// chunkReader reads one consumer's copy of the stream. After the last
// chunk it returns the producer's error, or io.EOF.
type chunkReader struct {
	f   *fanout
	ch  chan *chunk
	cur *chunk
	off int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for r.cur == nil || r.off == r.cur.n {
		if r.cur != nil {
			r.f.release(r.cur)
			r.cur = nil
		}
		c, ok := <-r.ch
		if !ok {
			<-r.f.done
			if r.f.err != nil {
				return 0, r.f.err
			}
			return 0, io.EOF
		}
		r.cur, r.off = c, 0
	}
	n := copy(p, r.cur.data[r.off:r.cur.n])
	r.off += n
	return n, nil
}

// WriteTo hands w the rest of this consumer's stream a chunk at a time,
// without copying; after the last chunk it returns the producer's error.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for {
		if r.cur != nil && r.off < r.cur.n {
			n, err := w.Write(r.cur.data[r.off:r.cur.n])
			r.off += n
			written += int64(n)
			if err == nil && r.off < r.cur.n {
				err = io.ErrShortWrite
			}
			if err != nil {
				return written, err
			}
		}
		if r.cur != nil {
			r.f.release(r.cur)
			r.cur = nil
		}
		c, ok := <-r.ch
		if !ok {
			<-r.f.done
			return written, r.f.err
		}
		r.cur, r.off = c, 0
	}
}

// drain releases every chunk left for this reader until the producer
// stops, and returns the producer's error.
func (r *chunkReader) drain() error {
	if r.cur != nil {
		r.f.release(r.cur)
		r.cur = nil
	}
	for c := range r.ch {
		r.f.release(c)
	}
	<-r.f.done
	return r.f.err
}
