package sessionlock

import (
	"errors"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

func fingerprintFromInfo(_ string, st fs.FileInfo) Fingerprint {
	fp := Fingerprint{Exists: true, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		fp.Device = uint64(s.Dev)
		fp.Inode = uint64(s.Ino)
		fp.ChangeTime = int64(s.Ctim.Sec)*1e9 + int64(s.Ctim.Nsec)
	}
	return fp
}

// statPath stats path (following symbolic links) into a Fingerprint
// without the allocations of os.Stat: it runs twice per tenure.
func statPath(path string) (fp Fingerprint, regular bool, err error) {
	var st unix.Stat_t
	for {
		err = unix.Stat(path, &st)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return Fingerprint{}, false, err
	}
	fp = Fingerprint{Exists: true, Size: st.Size, ModTime: st.Mtim.Nano(), ChangeTime: st.Ctim.Nano(),
		Device: uint64(st.Dev), Inode: st.Ino}
	return fp, st.Mode&unix.S_IFMT == unix.S_IFREG, nil
}
