//go:build !linux

package sessionlock

import (
	"io/fs"
	"os"
)

// lstatLock describes the file at path without following a symbolic link.
func lstatLock(path string) (lockStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return lockStat{}, err
	}
	return lockStatOf(fi), nil
}

// statID describes the file at path, following symbolic links.
func statID(path string) (lockStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return lockStat{}, err
	}
	return lockStatOf(fi), nil
}

// fstatLock describes the open file f.
func fstatLock(f *os.File) (lockStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return lockStat{}, err
	}
	return lockStatOf(fi), nil
}

// fileIDOf gives no identity here; lockStat.same falls back to os.SameFile.
func fileIDOf(fs.FileInfo) fileID { return fileID{} }
