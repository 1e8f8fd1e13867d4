package sessionlock

import (
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// FileSystem describes the file system that holds a session file, as far as
// fingerprints care.
type FileSystem struct {
	// Type is the file system's name as the operating system reports it
	// ("ext4", "tmpfs", "nfs", "cifs", "fuse", ...), or "unknown".
	Type string
	// Remote is true for network and FUSE file systems (NFS, SMB/CIFS,
	// 9p, Ceph, FUSE including virtiofs, ...). Their stat can change for a
	// file nobody touched (inode numbers, mtime, ctime), so automatic mode
	// verifies content there.
	Remote bool
	// FineTimestamps is true when every change made right after a stat
	// gets a timestamp different from the one that stat returned, as with
	// the multigrain timestamps of Linux 6.13 and later. When false (for
	// example ext4 with one-second timestamps), a stat snapshot taken in
	// the same clock tick as a change cannot prove the file unchanged, and
	// the racy rule backs it with a content digest.
	FineTimestamps bool
	// Probed says whether FineTimestamps comes from a probe. Inspect does
	// not probe (it creates nothing); before any tenure in this process has
	// used the file system, it reports Probed false and FineTimestamps
	// false, the cautious answer.
	Probed bool
}

// AutoMode is the fingerprint mode that FingerprintAuto resolves to on this
// file system: FingerprintContent on remote file systems, FingerprintStat
// elsewhere.
func (f FileSystem) AutoMode() FingerprintMode {
	if f.Remote {
		return FingerprintContent
	}
	return FingerprintStat
}

// InspectFileSystem reports what the library knows about the file system
// holding dir. The first call for a file system runs a timestamp probe
// that creates, rewrites and removes a scratch file in dir; later calls in
// the process use the cached answer.
func InspectFileSystem(dir string) (FileSystem, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return FileSystem{}, err
	}
	if !st.IsDir() {
		return FileSystem{}, fmt.Errorf("inspect file system: %s is not a directory", dir)
	}
	return fileSystemOf(dir, nil), nil
}

// probeRounds is how many rewrite-after-stat trials the timestamp probe
// makes. One unseen rewrite is enough to call the file system coarse; on a
// file system with fine-grained (or multigrain) timestamps none goes unseen.
const probeRounds = 8

// fsCache remembers each file system's FileSystem, keyed by an identity of
// the mounted file system (see fsIdentify): one entry per file system, not
// per session.
var fsCache sync.Map // key -> FileSystem

// fileSystemOf returns the cached FileSystem for the file system holding
// dir, probing it on first use. If the file system cannot be identified,
// it is probed every time.
//
// hint, when not nil, is the stat of a file in dir (the lock file), which
// saves a stat of dir where the key needs the device number.
func fileSystemOf(dir string, hint fs.FileInfo) FileSystem {
	key, typ, remote, ok := fsIdentify(dir, hint)
	if ok {
		if v, found := fsCache.Load(key); found {
			return v.(FileSystem)
		}
	}
	fsys := FileSystem{Type: typ, Remote: remote, FineTimestamps: probeTimestamps(dir), Probed: true}
	if ok {
		fsCache.Store(key, fsys)
	}
	return fsys
}

// knownFileSystem is fileSystemOf without the probe: it never writes to
// dir.
func knownFileSystem(dir string) FileSystem {
	key, typ, remote, ok := fsIdentify(dir, nil)
	if ok {
		if v, found := fsCache.Load(key); found {
			return v.(FileSystem)
		}
	}
	return FileSystem{Type: typ, Remote: remote}
}

// fineTimestamps reports whether the file system holding dir gives every
// change made after a stat a timestamp that differs from the one that stat
// returned (see FileSystem.FineTimestamps).
func fineTimestamps(dir string) bool { return fileSystemOf(dir, nil).FineTimestamps }

// probeTimestamps answers FineTimestamps for the file system holding dir:
// create a scratch file, stat it, rewrite it in place with the same size,
// stat it again, several times. If the probe cannot run (for example the
// directory is not writable), the answer is false, which costs a digest
// but never misses a change.
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
