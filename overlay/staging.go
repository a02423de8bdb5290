package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata/archive"
	"github.com/stratafs/strata/driver"
)

// Staging: a layer tar is applied into home/staging/<random>/diff with no
// lock of the layer store held, then renamed into place as a layer's diff
// when the store commits it. While it is in use the area's staging.lock
// carries an open-file-description write lock (F_OFD_SETLK): the lock dies
// with the process, conflicts with other processes' fcntl locks and with
// other opens in this process, and is not dropped when some other
// descriptor of the file is closed. New removes every area whose lock it
// can take: what a crash left.
const (
	stagingDirName  = "staging"
	stagingLockName = "staging.lock"
	scratchName     = "scratch"
)

var _ driver.StagingDriver = (*Driver)(nil)

func init() { initHooks = append(initHooks, (*Driver).removeStaleStaging) }

// stagingDir is home/staging, which holds the staging areas.
func (d *Driver) stagingDir() string { return filepath.Join(d.home, stagingDirName) }

// staged is one staging area: dir/diff (the layer's files, root 0555 0:0
// until committed), dir/scratch (the caller's files) and dir/staging.lock.
type staged struct {
	d       *Driver
	dir     string
	lock    *os.File // holds the OFD write lock on dir/staging.lock
	rootSet bool     // the tar set the root's mode and owner
	gone    bool     // committed or discarded
}

// Stage makes an empty, locked staging area below home/staging. A
// read-only home fails with driver.ErrReadOnlyStore.
func (d *Driver) Stage() (driver.Staged, error) {
	if d.readOnly {
		return nil, fmt.Errorf("overlay staging: overlay home %s is read-only: %w", d.home, driver.ErrReadOnlyStore)
	}
	if err := os.MkdirAll(d.stagingDir(), 0o700); err != nil {
		return nil, stagingError(err)
	}
	for range 10 {
		dir, err := os.MkdirTemp(d.stagingDir(), "")
		if errors.Is(err, fs.ErrNotExist) {
			// The last Discard removed home/staging after our MkdirAll.
			if err := os.MkdirAll(d.stagingDir(), 0o700); err != nil {
				return nil, stagingError(err)
			}
			continue
		}
		if err != nil {
			return nil, stagingError(err)
		}
		lock, err := lockStaging(dir)
		if errors.Is(err, errStagingGone) {
			// Another process's cleanup took it between mkdir and lock.
			continue
		}
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("overlay staging %s: %w", dir, err)
		}
		s := &staged{d: d, dir: dir, lock: lock}
		if err := mkdirOwned(s.diffDir(), 0o555, 0, 0); err != nil {
			s.Discard()
			return nil, fmt.Errorf("overlay staging %s: %w", dir, err)
		}
		if err := os.Mkdir(s.ScratchDir(), 0o700); err != nil {
			s.Discard()
			return nil, fmt.Errorf("overlay staging %s: %w", dir, err)
		}
		return s, nil
	}
	return nil, errors.New("overlay staging: every new staging dir was removed by a cleanup")
}

// stagingError names the staging dir in err, and marks a filesystem made
// read-only after New (EROFS) with driver.ErrReadOnlyStore.
func stagingError(err error) error {
	if errors.Is(err, unix.EROFS) {
		return fmt.Errorf("overlay staging: %w: %w", err, driver.ErrReadOnlyStore)
	}
	return fmt.Errorf("overlay staging: %w", err)
}

var (
	errStagingGone = errors.New("staging dir was removed")
	errStagingBusy = errors.New("staging dir is in use")
)

// lockStaging takes the write lock of dir's staging.lock without waiting.
// It fails with errStagingBusy when someone holds it, and with
// errStagingGone when dir was removed before the lock was taken (the lock
// is then on a file no one else can find).
func lockStaging(dir string) (*os.File, error) {
	path := filepath.Join(dir, stagingLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errStagingGone
	}
	if err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, errStagingBusy
		}
		return nil, &os.PathError{Op: "lock", Path: path, Err: err}
	}
	var held, named unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := unix.Stat(path, &named); err != nil || named.Ino != held.Ino || named.Dev != held.Dev {
		f.Close()
		return nil, errStagingGone
	}
	return f, nil
}

// removeStaleStaging removes the staging areas no live process holds: a
// crash left them. Failures are logged, not returned: a leftover costs
// space, not correctness.
func (d *Driver) removeStaleStaging() error {
	entries, err := os.ReadDir(d.stagingDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		d.logger.Warn("cannot list overlay staging dirs; leftovers stay", "dir", d.stagingDir(), "err", err)
		return nil
	}
	for _, e := range entries {
		dir := filepath.Join(d.stagingDir(), e.Name())
		if !e.IsDir() {
			continue
		}
		lock, err := lockStaging(dir)
		if errors.Is(err, errStagingBusy) {
			d.logger.Debug("staging dir in use by a live process; kept", "dir", dir)
			continue
		}
		if errors.Is(err, errStagingGone) {
			continue
		}
		if err != nil {
			d.logger.Warn("cannot lock leftover staging dir; it stays", "dir", dir, "err", err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			d.logger.Warn("cannot remove leftover staging dir", "dir", dir, "err", err)
		} else {
			d.logger.Debug("removed leftover staging dir", "dir", dir)
			d.recovered = append(d.recovered, fmt.Sprintf("staging dir %s of a process that died while applying a layer removed", dir))
		}
		lock.Close()
	}
	d.removeStagingIfEmpty()
	return nil
}

func (s *staged) diffDir() string { return filepath.Join(s.dir, diffName) }

// ScratchDir returns home/staging/<random>/scratch.
func (s *staged) ScratchDir() string { return filepath.Join(s.dir, scratchName) }

// ApplyDiff applies the tar to the staged diff dir with archive.Apply.
func (s *staged) ApplyDiff(opts driver.ApplyDiffOpts) (driver.ApplyResult, error) {
	if s.gone {
		return driver.ApplyResult{}, fmt.Errorf("overlay staging %s: already committed or discarded: %w",
			s.dir, driver.ErrInvalidArgument)
	}
	if opts.Diff == nil {
		return driver.ApplyResult{}, fmt.Errorf("overlay staging %s: no diff to apply: %w",
			s.dir, driver.ErrInvalidArgument)
	}
	logger := opts.Logger
	if logger == nil {
		logger = s.d.logger
	}
	res, err := archive.Apply(s.diffDir(), opts.Diff, archive.Options{Logger: logger})
	if err != nil {
		return driver.ApplyResult{}, err
	}
	s.rootSet = res.RootSet
	return driver.ApplyResult{UIDs: res.UIDs, GIDs: res.GIDs}, nil
}

// Commit creates layer id's directories as Create does, then renames the
// staged diff over the empty one Create made. Without a "./" entry in the
// tar the staged root takes the mode and owner Create gave the empty root
// (the parent's). Caller holds whatever lock keeps id free (the layer
// store's write lock).
func (s *staged) Commit(id, parent string, opts *driver.CreateOpts) (retErr error) {
	if s.gone {
		return fmt.Errorf("layer %s: staging %s already committed or discarded: %w",
			id, s.dir, driver.ErrInvalidArgument)
	}
	if err := s.d.create(id, parent, opts); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			if err := s.d.Remove(id); err != nil {
				s.d.logger.Warn("cannot remove layer after a failed commit", "id", id, "err", err)
			}
		}
	}()

	target := s.d.diffDir(id)
	if !s.rootSet {
		var st unix.Stat_t
		if err := unix.Stat(target, &st); err != nil {
			return fmt.Errorf("layer %s: %w", id, &os.PathError{Op: "stat", Path: target, Err: err})
		}
		if err := os.Lchown(s.diffDir(), int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
		if err := unix.Chmod(s.diffDir(), st.Mode&0o7777); err != nil {
			return fmt.Errorf("layer %s: %w", id, &os.PathError{Op: "chmod", Path: s.diffDir(), Err: err})
		}
	}
	// rename(2) replaces the empty directory Create made in one step
	// (os.Rename refuses to replace a directory).
	if err := unix.Rename(s.diffDir(), target); err != nil {
		return fmt.Errorf("layer %s: %w", id, &os.LinkError{Op: "rename", Old: s.diffDir(), New: target, Err: err})
	}
	if err := s.Discard(); err != nil {
		s.d.logger.Warn("cannot remove staging dir of a committed layer; the next open does",
			"id", id, "dir", s.dir, "err", err)
	}
	return nil
}

// Discard removes the staging area (its lock is released only after it is
// gone, so no cleanup races with the removal).
func (s *staged) Discard() error {
	if s.gone {
		return nil
	}
	s.gone = true
	err := os.RemoveAll(s.dir)
	s.lock.Close()
	if err != nil {
		return fmt.Errorf("overlay staging: %w", err)
	}
	s.d.removeStagingIfEmpty()
	return nil
}

// removeStagingIfEmpty removes home/staging when no staging area is left,
// so that a store at rest looks as it did before anything was staged. It
// fails harmlessly while another area exists (Stage recreates the dir when
// this wins the race against it).
func (d *Driver) removeStagingIfEmpty() { _ = os.Remove(d.stagingDir()) }
