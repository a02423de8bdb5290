// Package lockfile provides the lock files that guard strata's metadata.
//
// A LockFile excludes other processes with POSIX record locks (fcntl
// F_SETLKW, whole file), the same call containers/storage uses, so both
// programs can share one store. POSIX locks belong to the process, not to a
// file descriptor or goroutine, so a sync.RWMutex in front of the fcntl lock
// excludes goroutines of the same process. There is one LockFile per path per
// process (see Get): two objects for the same file would let one close its
// descriptor and silently drop the other's locks.
//
// The first 64 bytes of the file hold a last-write token (see LastWrite)
// which a writer refreshes with RecordWrite, so that readers can tell
// whether the data the lock guards changed since they loaded it.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock is wrapped by TryLock and TryRLock when the lock is held
// elsewhere.
var ErrWouldBlock = errors.New("lock is held elsewhere")

// LockFile is a lock shared by the goroutines of this process and by other
// processes that lock the same file with POSIX record locks.
type LockFile struct {
	path     string
	file     *os.File // never closed: closing any fd of the file drops our POSIX locks
	writable bool

	// rw excludes goroutines of this process.
	rw sync.RWMutex

	// stateMu guards readers, the number of goroutines holding the read
	// lock; the first takes the fcntl read lock and the last releases it.
	stateMu sync.Mutex
	readers int
}

var (
	registryMu sync.Mutex
	registry   = map[string]*LockFile{}
)

// Get returns the process-wide LockFile for path, creating the file (0644)
// and its parent directories when they are missing. When the file cannot be
// opened for writing (a read-only store), it is opened read-only; such a
// LockFile can only be read-locked.
func Get(path string) (*LockFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lock file %q: %w", path, err)
	}
	abs = filepath.Clean(abs)

	registryMu.Lock()
	defer registryMu.Unlock()
	if l, ok := registry[abs]; ok {
		return l, nil
	}

	l, err := open(abs)
	if err != nil {
		return nil, err
	}
	registry[abs] = l
	return l, nil
}

func open(path string) (*LockFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil && !errors.Is(err, unix.EROFS) {
		return nil, fmt.Errorf("lock file %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return &LockFile{path: path, file: f, writable: true}, nil
	}
	if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	f, rerr := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if rerr != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	return &LockFile{path: path, file: f}, nil
}

// Path returns the lock file's absolute path.
func (l *LockFile) Path() string { return l.path }

// Writable reports whether the file could be opened for writing, which Lock
// and RecordWrite need.
func (l *LockFile) Writable() bool { return l.writable }

// Lock takes the write lock, waiting for goroutines of this process and for
// other processes to release theirs. It panics when the file was opened
// read-only or fcntl fails for a reason other than an interrupt: both are
// programming or system errors a caller cannot handle.
func (l *LockFile) Lock() {
	if !l.writable {
		panic(fmt.Sprintf("lockfile: write lock on read-only lock file %s", l.path))
	}
	l.rw.Lock()
	if err := l.fcntl(unix.F_SETLKW, unix.F_WRLCK); err != nil {
		l.rw.Unlock()
		panic(fmt.Sprintf("lockfile: write lock on %s: %v", l.path, err))
	}
}

// Unlock releases the write lock taken by Lock or TryLock.
func (l *LockFile) Unlock() {
	if err := l.fcntl(unix.F_SETLK, unix.F_UNLCK); err != nil {
		panic(fmt.Sprintf("lockfile: unlock %s: %v", l.path, err))
	}
	l.rw.Unlock()
}

// RLock takes a read lock. Goroutines of this process share it; the first
// one takes the fcntl read lock for the process.
func (l *LockFile) RLock() {
	l.rw.RLock()
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.readers == 0 {
		if err := l.fcntl(unix.F_SETLKW, unix.F_RDLCK); err != nil {
			l.rw.RUnlock()
			panic(fmt.Sprintf("lockfile: read lock on %s: %v", l.path, err))
		}
	}
	l.readers++
}

// RUnlock releases a read lock taken by RLock or TryRLock; the last reader
// of the process releases the fcntl lock.
func (l *LockFile) RUnlock() {
	l.stateMu.Lock()
	l.readers--
	if l.readers == 0 {
		if err := l.fcntl(unix.F_SETLK, unix.F_UNLCK); err != nil {
			l.stateMu.Unlock()
			panic(fmt.Sprintf("lockfile: unlock %s: %v", l.path, err))
		}
	}
	l.stateMu.Unlock()
	l.rw.RUnlock()
}

// TryLock takes the write lock if nobody holds the lock; otherwise it
// returns an error wrapping ErrWouldBlock.
func (l *LockFile) TryLock() error {
	if !l.writable {
		return fmt.Errorf("lock file %s: write lock on a read-only lock file: %w", l.path, os.ErrPermission)
	}
	if !l.rw.TryLock() {
		return fmt.Errorf("lock file %s: %w", l.path, ErrWouldBlock)
	}
	if err := l.fcntl(unix.F_SETLK, unix.F_WRLCK); err != nil {
		l.rw.Unlock()
		return l.tryError(err)
	}
	return nil
}

// TryRLock takes a read lock if no writer holds the lock; otherwise it
// returns an error wrapping ErrWouldBlock.
func (l *LockFile) TryRLock() error {
	if !l.rw.TryRLock() {
		return fmt.Errorf("lock file %s: %w", l.path, ErrWouldBlock)
	}
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.readers == 0 {
		if err := l.fcntl(unix.F_SETLK, unix.F_RDLCK); err != nil {
			l.rw.RUnlock()
			return l.tryError(err)
		}
	}
	l.readers++
	return nil
}

func (l *LockFile) tryError(err error) error {
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("lock file %s: %w", l.path, ErrWouldBlock)
	}
	return fmt.Errorf("lock file %s: %w", l.path, err)
}

// fcntl sets a whole-file POSIX record lock of type typ, retrying when a
// signal interrupts a blocking wait. The kernel's deadlock detection works
// per process and can report EDEADLK for a wait that is not a deadlock
// when threads of two processes wait on several files; the wait is retried
// after a pause.
func (l *LockFile) fcntl(cmd int, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	for {
		err := unix.FcntlFlock(l.file.Fd(), cmd, &lk)
		switch {
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EDEADLK) && cmd == unix.F_SETLKW:
			time.Sleep(10 * time.Millisecond)
		default:
			return err
		}
	}
}
