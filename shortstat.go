package sessionlock

import (
	"io/fs"
	"os"
)

// shortStat is a stat without timestamps: a file's type, its size (for the
// lock file, the ledger's length) and its identity. It serves the checks
// on the lock file and on the session's path, which need nothing else.
//
// On Linux it comes from statx asking for no timestamps. That matters for
// speed: since Linux 6.13, local file systems give a file a fine-grained
// timestamp on its next write only once someone has read its timestamps,
// and updating that timestamp costs a journal entry. A lock file whose
// times nobody reads gets its ledger rewritten within one clock tick for
// the price of a memory copy.
type shortStat struct {
	mode fs.FileMode
	size int64
	id   fileID
	fi   fs.FileInfo // where the platform gives no fileID
}

// fileID is a file's device and inode numbers.
type fileID struct {
	dev, ino uint64
	ok       bool
}

// same reports whether a and b describe the same file.
func (a shortStat) same(b shortStat) bool {
	if a.id.ok && b.id.ok {
		return a.id.dev == b.id.dev && a.id.ino == b.id.ino
	}
	return a.fi != nil && b.fi != nil && os.SameFile(a.fi, b.fi)
}

func shortStatOf(fi fs.FileInfo) shortStat {
	return shortStat{mode: fi.Mode(), size: fi.Size(), id: fileIDOf(fi), fi: fi}
}
