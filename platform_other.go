//go:build !unix && !windows

package sessionlock

const oNoFollow = 0

const ledgerOffset = 0
