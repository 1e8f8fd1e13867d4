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

// openLedgerFile opens the lock file for reading and writing the ledger,
// never through a symbolic link. It uses the raw system call and os.NewFile
// because os.OpenFile would first try (and fail) to register a regular file
// with the runtime's poller, four wasted system calls on every tenure.
func openLedgerFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
