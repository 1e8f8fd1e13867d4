//go:build !linux && !darwin && !freebsd && !netbsd && !windows

package sessionlock

import "io/fs"

// fingerprintFromInfo on platforms without a known stat layout uses size and
// modification time only; identity changes go unseen there.
func fingerprintFromInfo(_ string, st fs.FileInfo) Fingerprint {
	return Fingerprint{Exists: true, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
}
