//go:build darwin || freebsd || netbsd

package sessionlock

import (
	"io/fs"
	"os"
	"syscall"
)

func fingerprintFromInfo(_ string, st fs.FileInfo) Fingerprint {
	fp := Fingerprint{Exists: true, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		fp.Device = uint64(s.Dev)
		fp.Inode = uint64(s.Ino)
		fp.ChangeTime = int64(s.Ctimespec.Sec)*1e9 + int64(s.Ctimespec.Nsec)
	}
	return fp
}

// statPath stats path (following symbolic links) into a Fingerprint.
func statPath(path string) (Fingerprint, bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Fingerprint{}, false, err
	}
	return fingerprintFromInfo(path, st), st.Mode().IsRegular(), nil
}
