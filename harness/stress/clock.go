package stress

import "golang.org/x/sys/unix"

// Now returns CLOCK_MONOTONIC in nanoseconds. The clock is system-wide, so
// times taken in different processes can be compared.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC is always there on Linux; without it no time in
		// any log could be trusted.
		panic("stress: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}
