package main

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// floorCycle returns the system calls of one uncontended tenure, issued
// bare on a lock file kept open, with none of the library's logic around
// them: stat the session's directory and the session file (the canonical
// path; a fence's Reacquire has it already, and so does the floor of a
// fence cycle, withPath false), lock, identify the lock file at its path, read the ledger, stat
// the session file, write the ledger; at release identify the lock file,
// stat the session file, write the ledger, unlock. It is the floor that
// the library's tenure can approach on this machine without leaving out a
// step of the protocol; close releases its descriptor.
func floorCycle(session string, withPath bool) (cycle func() error, close func(), err error) {
	lockPath := session + ".floor.lock"
	ledger := make([]byte, 4096)
	for i := range ledger {
		ledger[i] = ' '
	}
	if err := os.WriteFile(lockPath, ledger, 0o644); err != nil {
		return nil, nil, err
	}
	fd, err := unix.Open(lockPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(session)
	buf := make([]byte, len(ledger))
	const mask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_INO | unix.STATX_SIZE
	var sx unix.Statx_t
	var st unix.Stat_t
	lockStat := func() error {
		return unix.Statx(unix.AT_FDCWD, lockPath, unix.AT_SYMLINK_NOFOLLOW, mask, &sx)
	}
	cycle = func() error {
		// Straight-line calls: the floor must carry no overhead of its own.
		if withPath {
			if err := unix.Statx(unix.AT_FDCWD, dir, 0, mask, &sx); err != nil {
				return err
			}
			if err := unix.Statx(unix.AT_FDCWD, session, unix.AT_SYMLINK_NOFOLLOW, mask, &sx); err != nil {
				return err
			}
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return err
		}
		if err := lockStat(); err != nil {
			return err
		}
		if _, err := unix.Pread(fd, buf, 0); err != nil {
			return err
		}
		if err := unix.Stat(session, &st); err != nil {
			return err
		}
		ledger[0]++
		if _, err := unix.Pwrite(fd, ledger, 0); err != nil {
			return err
		}
		if err := lockStat(); err != nil {
			return err
		}
		if err := unix.Stat(session, &st); err != nil {
			return err
		}
		ledger[1]++
		if _, err := unix.Pwrite(fd, ledger, 0); err != nil {
			return err
		}
		return unix.Flock(fd, unix.LOCK_UN)
	}
	return cycle, func() { unix.Close(fd); os.Remove(lockPath) }, nil
}
