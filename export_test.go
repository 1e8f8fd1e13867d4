package sessionlock

// Internals exposed to the external test package sessionlock_test.
var (
	// FineTimestamps is the cached per-file-system timestamp probe.
	FineTimestamps = fineTimestamps
	// ProbeTimestamps runs the probe without the cache.
	ProbeTimestamps = probeTimestamps
)
