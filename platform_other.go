//go:build !unix && !windows

package sessionlock

import "os"

const oNoFollow = 0

const ledgerOffset = 0

func lockedElsewhere(*os.File) bool { return false }

// processAlive cannot tell on this platform; it reports true, the cautious
// answer for a diagnostic.
func processAlive(pid int) bool { return pid > 0 }
