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

// openLedgerFile opens the lock file for reading and writing the ledger.
func openLedgerFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
}
