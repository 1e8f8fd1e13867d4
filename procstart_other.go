//go:build !linux

package sessionlock

import "time"

// processStartedAfter cannot tell on this platform; it reports false, so a
// recycled pid still counts as alive.
func processStartedAfter(int, time.Time) bool { return false }
