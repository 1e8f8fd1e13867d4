//go:build unix

package sessionlock

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// oNoFollow makes opening the lock file fail rather than follow a symbolic
// link planted at its path.
const oNoFollow = syscall.O_NOFOLLOW

// ledgerOffset is where the ledger starts in the lock file.
const ledgerOffset = 0

// lockedElsewhere reports whether an exclusive flock on f's open file
// description would block, that is, whether another open file description
// holds a lock on the same file. A lock it happens to get is dropped at
// once.
func lockedElsewhere(f *os.File) bool {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}

// processAlive reports whether a process with this pid exists on this host.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// keepLockFiles says whether a session's lock file may stay open between
// tenures (see handle.go).
const keepLockFiles = true

// openLockFile opens the lock file for locking and ledger I/O, creating it
// if missing, never through a symbolic link. It uses the raw system call
// and os.NewFile because os.OpenFile would first try (and fail) to register
// a regular file with the runtime's poller, wasted system calls on a path
// that runs once per active session.
func openLockFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, lockFileMode)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// tryLockFile takes an exclusive flock(2) on f's open file description
// without blocking. It reports false when another open file description
// holds a lock on the file. util-linux flock(1) and gofrs/flock take the
// same kind of lock, so they exclude and are excluded.
func tryLockFile(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return false, err
	}
}

// unlockFile drops the flock(2) that tryLockFile took.
func unlockFile(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
