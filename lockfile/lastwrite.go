package lockfile

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// TokenSize is the length of the last-write token at the start of a lock
// file; containers/storage uses the same size, so either program notices the
// other's writes.
const TokenSize = 64

// LastWrite is a last-write token. The zero value stands for a lock file
// that was never written.
type LastWrite struct {
	token [TokenSize]byte
}

// Equal reports whether a and b are the same token.
func (a LastWrite) Equal(b LastWrite) bool { return a.token == b.token }

// IsZero reports whether the token is the "never written" one.
func (a LastWrite) IsZero() bool { return a.token == [TokenSize]byte{} }

// String returns the token in hex, for debug logs.
func (a LastWrite) String() string { return fmt.Sprintf("%x", a.token[:]) }

var writeCounter atomic.Uint64

// newLastWrite makes a token no other write of any process produces: the
// time, a per-process counter, the pid and random bytes.
func newLastWrite() (LastWrite, error) {
	var lw LastWrite
	binary.BigEndian.PutUint64(lw.token[0:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(lw.token[8:16], writeCounter.Add(1))
	binary.BigEndian.PutUint32(lw.token[16:20], uint32(os.Getpid()))
	if _, err := rand.Read(lw.token[20:]); err != nil {
		return LastWrite{}, err
	}
	return lw, nil
}

// RecordWrite writes a fresh token at the start of the file and returns it.
// The caller holds the write lock and calls it before changing the data the
// lock guards, so a reader that sees the old token reloads.
func (l *LockFile) RecordWrite() (LastWrite, error) {
	lw, err := newLastWrite()
	if err != nil {
		return LastWrite{}, fmt.Errorf("lock file %s: new token: %w", l.path, err)
	}
	n, err := l.file.WriteAt(lw.token[:], 0)
	if err == nil && n != TokenSize {
		err = io.ErrShortWrite
	}
	if err != nil {
		return LastWrite{}, fmt.Errorf("lock file %s: record write: %w", l.path, err)
	}
	return lw, nil
}

// GetLastWrite reads the current token. The caller holds a lock (read or
// write). An empty file gives the zero token.
func (l *LockFile) GetLastWrite() (LastWrite, error) {
	var lw LastWrite
	// A file shorter than a token (written by an older program) compares
	// as its bytes, zero-padded.
	if _, err := l.file.ReadAt(lw.token[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return LastWrite{}, fmt.Errorf("lock file %s: read token: %w", l.path, err)
	}
	return lw, nil
}

// ModifiedSince reports whether the token differs from prev. The caller
// holds a lock.
func (l *LockFile) ModifiedSince(prev LastWrite) (bool, error) {
	cur, err := l.GetLastWrite()
	if err != nil {
		return false, err
	}
	return !cur.Equal(prev), nil
}
