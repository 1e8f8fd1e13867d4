//go:build !unix && !windows

package sessionlock

import "os"

const oNoFollow = 0

const ledgerOffset = 0

func lockedElsewhere(*os.File) bool { return false }

// processAlive cannot tell on this platform; it reports true, the cautious
// answer for a diagnostic.
func processAlive(pid int) bool { return pid > 0 }

// openLedgerFile opens the lock file for reading and writing the ledger.
func openLedgerFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
}
