//go:build !linux

package sessionlock

import (
	"io/fs"
	"os"
)

// lstatShort describes the file at path without following a symbolic link.
func lstatShort(path string) (shortStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return shortStat{}, err
	}
	return shortStatOf(fi), nil
}

// statShort describes the file at path, following symbolic links.
func statShort(path string) (shortStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return shortStat{}, err
	}
	return shortStatOf(fi), nil
}

// fstatShort describes the open file f.
func fstatShort(f *os.File) (shortStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return shortStat{}, err
	}
	return shortStatOf(fi), nil
}

// fileIDOf gives no identity here; shortStat.same falls back to os.SameFile.
func fileIDOf(fs.FileInfo) fileID { return fileID{} }
