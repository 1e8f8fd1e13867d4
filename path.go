package sessionlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// lockSuffix is appended to the canonical session path to name its lock file.
const lockSuffix = ".lock"

// maxSymlinkHops bounds how many symbolic links a session path may pass
// through before it is rejected as a loop.
const maxSymlinkHops = 40

// CanonicalPath returns the path that the library uses for sessionFile: an
// absolute path with every symbolic link resolved, in its directory and in
// the final element (even a link whose target does not exist yet). Two
// spellings of one file give the same canonical path and so share one lock.
//
// The session file need not exist, but its directory must. CanonicalPath
// creates nothing. Errors are *fs.PathError values wrapping ErrInvalidPath
// or the operating system's error.
func CanonicalPath(sessionFile string) (string, error) {
	return canonicalize("canonicalize", sessionFile)
}

func canonicalize(op, sessionFile string) (string, error) {
	invalid := func(why string) error {
		return &fs.PathError{Op: op, Path: sessionFile, Err: fmt.Errorf("%w: %s", ErrInvalidPath, why)}
	}
	if sessionFile == "" {
		return "", invalid("empty path")
	}
	if strings.IndexByte(sessionFile, 0) >= 0 {
		return "", invalid("path contains a NUL byte")
	}
	if strings.HasSuffix(sessionFile, string(filepath.Separator)) || strings.HasSuffix(sessionFile, "/") {
		return "", invalid("path ends in a separator, so it names a directory")
	}

	p, err := absolute(sessionFile)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: sessionFile, Err: err}
	}

	for hops := 0; ; hops++ {
		if hops > maxSymlinkHops {
			return "", invalid("too many levels of symbolic links")
		}
		dir, base := filepath.Split(p)
		if base == "" || base == "." || base == ".." {
			return "", invalid("path names a directory")
		}
		// dir is not cleaned: on POSIX systems "link/.." is the parent of
		// the link's target, not the directory holding the link, and
		// EvalSymlinks resolves it that way.
		dir = trimSeparators(dir)
		realDir, err := resolveDir(dir)
		if err != nil {
			st, serr := os.Stat(dir)
			switch {
			case errors.Is(serr, fs.ErrNotExist):
				return "", invalid("directory " + dir + " does not exist")
			case serr == nil && !st.IsDir():
				return "", invalid(dir + " is not a directory")
			}
			return "", &fs.PathError{Op: op, Path: sessionFile, Err: unwrapPathError(err)}
		}
		p = filepath.Join(realDir, base)

		// EvalSymlinks checked that realDir exists; Lstat of an entry in it
		// fails with ENOTDIR when it is not a directory.
		st, err := lstatShort(p)
		switch {
		case err != nil && !errors.Is(err, fs.ErrNotExist) && isNotDir(realDir):
			return "", invalid(dir + " is not a directory")
		case errors.Is(err, fs.ErrNotExist):
			return p, nil
		case err != nil:
			return "", &fs.PathError{Op: op, Path: sessionFile, Err: unwrapPathError(err)}
		case st.mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return "", &fs.PathError{Op: op, Path: sessionFile, Err: err}
			}
			if !filepath.IsAbs(target) {
				target = realDir + string(filepath.Separator) + target
			}
			p = target
		case st.mode.IsDir():
			return "", invalid("path is a directory")
		case !st.mode.IsRegular():
			return "", invalid("path is not a regular file (" + st.mode.Type().String() + ")")
		default:
			return p, nil
		}
	}
}

// resolveDir returns dir with every symbolic link resolved. Resolving walks
// the path one element at a time, a system call each, on every acquire; so
// a resolved directory is remembered with its identity, and reused while
// the canonical path still names the same directory and dir still leads to
// it: one or two stat calls instead of one per element.
//
// What the check cannot see: a directory that a new symbolic link now
// reaches by another route (an ancestor renamed and a link left in its
// place). The remembered path then names the right directory by a route
// that is no longer canonical; every path to the lock file still leads to
// the same file, so the lock still excludes, but Lock.SessionFile shows the
// old spelling until the cache entry is dropped.
func resolveDir(dir string) (string, error) {
	dirCacheMu.Lock()
	c, ok := dirCache[dir]
	dirCacheMu.Unlock()
	if ok {
		if st, err := statShort(c.canon); err == nil && st.same(c.info) {
			if dir == c.canon {
				return c.canon, nil
			}
			if st, err := statShort(dir); err == nil && st.same(c.info) {
				return c.canon, nil
			}
		}
	}
	canon, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	st, err := statShort(canon)
	if err != nil {
		return canon, nil
	}
	dirCacheMu.Lock()
	if len(dirCache) >= maxDirCache {
		clear(dirCache)
	}
	dirCache[dir] = resolvedDir{canon: canon, info: st}
	dirCacheMu.Unlock()
	return canon, nil
}

// maxDirCache bounds the remembered directories; a process with more
// session directories than this resolves some of them again.
const maxDirCache = 256

type resolvedDir struct {
	canon string
	info  shortStat
}

var (
	dirCacheMu sync.Mutex
	dirCache   = map[string]resolvedDir{}
)

// isNotDir reports whether path exists and is not a directory. It is
// called only on error paths.
func isNotDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// trimSeparators drops trailing separators from a directory path, keeping
// a root ("/", `C:\`) whole.
func trimSeparators(dir string) string {
	keep := len(filepath.VolumeName(dir)) + 1
	for len(dir) > keep && os.IsPathSeparator(dir[len(dir)-1]) {
		dir = dir[:len(dir)-1]
	}
	return dir
}

// absolute makes p absolute without resolving ".." lexically, which on
// POSIX systems would be wrong after a symbolic link. Windows resolves ".."
// lexically itself, so there filepath.Abs is right.
func absolute(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	if runtime.GOOS == "windows" {
		return filepath.Abs(p)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + string(filepath.Separator) + p, nil
}

// checkLockFile reports whether an existing lock file at lockPath is safe to
// open: it must be a regular file, never a symbolic link. A missing lock file
// is fine; it will be created.
func checkLockFile(op, lockPath string) error {
	st, err := os.Lstat(lockPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return &fs.PathError{Op: op, Path: lockPath, Err: err}
	case st.Mode()&fs.ModeSymlink != 0:
		return &fs.PathError{Op: op, Path: lockPath, Err: fmt.Errorf("%w: it is a symbolic link", ErrLockFileNotRegular)}
	case !st.Mode().IsRegular():
		return &fs.PathError{Op: op, Path: lockPath, Err: fmt.Errorf("%w: it is a %s", ErrLockFileNotRegular, describeType(st.Mode()))}
	}
	return nil
}

func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "non-regular file (" + m.Type().String() + ")"
}
