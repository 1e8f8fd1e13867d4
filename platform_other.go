//go:build !unix && !windows

package sessionlock

import "os"

const oNoFollow = 0

const ledgerOffset = 0

func lockedElsewhere(*os.File) bool { return false }
