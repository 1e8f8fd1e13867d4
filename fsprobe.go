package sessionlock

import (
	"os"
	"sync"
)

// probeRounds is how many rewrite-after-stat trials the timestamp probe
// makes. One unseen rewrite is enough to call the file system coarse; on a
// file system with fine-grained (or multigrain) timestamps none goes unseen.
const probeRounds = 8

// timestampCache remembers, per file system, whether a change made right
// after a stat always shows in the file's timestamps. The key identifies the
// mounted file system (see fsKey), so the cache holds one entry per file
// system, not per session.
var timestampCache sync.Map // fsKey -> bool (true: fine-grained)

// fineTimestamps reports whether the file system holding dir gives every
// change made after a stat a timestamp that differs from the one that stat
// returned. When it does not (one-second ext4 timestamps, FAT, older kernels
// with jiffy clocks), a stat snapshot cannot prove a file unchanged and the
// racy rule needs a content digest.
//
// The answer comes from a probe in dir: create a scratch file, stat it,
// rewrite it in place with the same size, stat it again, several times.
// If the probe cannot run (for example the directory is not writable), the
// answer is false, which costs a digest but never misses a change.
func fineTimestamps(dir string) bool {
	key, ok := fsKey(dir)
	if ok {
		if v, found := timestampCache.Load(key); found {
			return v.(bool)
		}
	}
	fine := probeTimestamps(dir)
	if ok {
		timestampCache.Store(key, fine)
	}
	return fine
}

func probeTimestamps(dir string) bool {
	f, err := os.CreateTemp(dir, ".sessionlock-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	defer os.Remove(name)
	defer f.Close()

	if _, err := f.WriteAt([]byte{'a'}, 0); err != nil {
		return false
	}
	for i := 0; i < probeRounds; i++ {
		before, err := f.Stat()
		if err != nil {
			return false
		}
		if _, err := f.WriteAt([]byte{byte('b' + i%2)}, 0); err != nil {
			return false
		}
		after, err := f.Stat()
		if err != nil {
			return false
		}
		if fingerprintFromInfo(name, before).sameStat(fingerprintFromInfo(name, after)) {
			return false
		}
	}
	return true
}
