//go:build !linux && !darwin && !freebsd && !netbsd && !windows

package sessionlock

import (
	"io/fs"
	"os"
)

// fingerprintFromInfo on platforms without a known stat layout uses size and
// modification time only; identity changes go unseen there.
func fingerprintFromInfo(_ string, st fs.FileInfo) Fingerprint {
	return Fingerprint{Exists: true, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
}

// statPath stats path (following symbolic links) into a Fingerprint.
func statPath(path string) (Fingerprint, bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Fingerprint{}, false, err
	}
	return fingerprintFromInfo(path, st), st.Mode().IsRegular(), nil
}
