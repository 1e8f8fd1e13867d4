package sessionlock

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// shortStatMask asks statx for everything shortStat holds and no timestamps.
const shortStatMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_INO | unix.STATX_SIZE

// lstatShort describes the file at path without following a symbolic link.
func lstatShort(path string) (shortStat, error) {
	return statxPath(path, unix.AT_SYMLINK_NOFOLLOW, os.Lstat)
}

// statShort describes the file at path, following symbolic links.
func statShort(path string) (shortStat, error) { return statxPath(path, 0, os.Stat) }

func statxPath(path string, flags int, fallback func(string) (fs.FileInfo, error)) (shortStat, error) {
	var sx unix.Statx_t
	err := ignoringEINTR(func() error {
		return unix.Statx(unix.AT_FDCWD, path, flags|unix.AT_STATX_SYNC_AS_STAT, shortStatMask, &sx)
	})
	if errors.Is(err, unix.ENOSYS) {
		fi, err := fallback(path)
		if err != nil {
			return shortStat{}, err
		}
		return shortStatOf(fi), nil
	}
	if err != nil {
		return shortStat{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return shortStatFromStatx(&sx), nil
}

// fstatShort describes the open file f.
func fstatShort(f *os.File) (shortStat, error) {
	var sx unix.Statx_t
	err := ignoringEINTR(func() error {
		return unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, shortStatMask, &sx)
	})
	if errors.Is(err, unix.ENOSYS) {
		fi, err := f.Stat()
		if err != nil {
			return shortStat{}, err
		}
		return shortStatOf(fi), nil
	}
	if err != nil {
		return shortStat{}, &fs.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return shortStatFromStatx(&sx), nil
}

func ignoringEINTR(call func() error) error {
	for {
		if err := call(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func shortStatFromStatx(sx *unix.Statx_t) shortStat {
	mode := fs.FileMode(sx.Mode & 0o777)
	switch sx.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return shortStat{
		mode: mode,
		size: int64(sx.Size),
		id:   fileID{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino, ok: true},
	}
}

func fileIDOf(fi fs.FileInfo) fileID {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(s.Dev), ino: s.Ino, ok: true}
	}
	return fileID{}
}
