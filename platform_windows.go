package sessionlock

import "os"

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
