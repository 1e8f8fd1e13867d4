package sessionlock

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// oNoFollow is not needed on Windows: the lock path is checked with Lstat
// before it is opened, and after locking the locked file is compared with
// the one at the path.
const oNoFollow = 0

// ledgerOffset is where the ledger starts in the lock file. LockFileEx locks
// the first byte, and a lock on Windows is mandatory for every other handle,
// including the one the holder uses for the ledger and the ones waiters use
// to name the holder. The ledger therefore starts after that byte.
const ledgerOffset = 1

// lockedElsewhere is not needed on Windows, where file identity comes from
// the file index and does not flap; it reports false.
func lockedElsewhere(*os.File) bool { return false }

// processAlive reports whether a process with this pid exists on this host.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == 259 // STILL_ACTIVE
}

// keepLockFiles says whether a session's lock file may stay open between
// tenures (see handle.go). Not on Windows: an open file there cannot be
// removed, nor can the directory that holds it.
const keepLockFiles = false

// openLockFile opens the lock file for locking and ledger I/O, creating it
// if missing.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, lockFileMode)
}

// tryLockFile locks the first byte of f exclusively without waiting, as
// gofrs/flock does, so the two exclude each other. It reports false when
// another handle holds the lock.
func tryLockFile(f *os.File) (bool, error) {
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &windows.Overlapped{})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION), errors.Is(err, windows.ERROR_IO_PENDING):
		return false, nil
	}
	return false, err
}

// unlockFile drops the lock that tryLockFile took.
func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &windows.Overlapped{})
}
