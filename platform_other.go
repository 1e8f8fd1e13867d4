//go:build !unix && !windows

package sessionlock

import (
	"errors"
	"os"
)

const oNoFollow = 0

const ledgerOffset = 0

func lockedElsewhere(*os.File) bool { return false }

// processAlive cannot tell on this platform; it reports true, the cautious
// answer for a diagnostic.
func processAlive(pid int) bool { return pid > 0 }

// keepLockFiles says whether a session's lock file may stay open between
// tenures (see handle.go).
const keepLockFiles = false

// openLockFile opens the lock file for ledger I/O, creating it if missing.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, lockFileMode)
}

// tryLockFile fails: this platform has no file locks that this package
// knows how to take.
func tryLockFile(*os.File) (bool, error) { return false, errors.ErrUnsupported }

func unlockFile(*os.File) error { return errors.ErrUnsupported }
