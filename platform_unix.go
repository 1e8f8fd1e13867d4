//go:build unix

package sessionlock

import "syscall"

// oNoFollow makes opening the lock file fail rather than follow a symbolic
// link planted at its path.
const oNoFollow = syscall.O_NOFOLLOW

// ledgerOffset is where the ledger starts in the lock file.
const ledgerOffset = 0
