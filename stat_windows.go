package sessionlock

import (
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// fingerprintFromInfo on Windows takes identity from the volume serial
// number and file index, which need an open handle. The last write time
// stands in for ctime, which Windows does not keep in the same sense.
func fingerprintFromInfo(path string, st fs.FileInfo) Fingerprint {
	fp := Fingerprint{Exists: true, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	fp.ChangeTime = fp.ModTime
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return fp
	}
	h, err := windows.CreateFile(p, windows.FILE_READ_ATTRIBUTES,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return fp
	}
	defer windows.CloseHandle(h)
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err == nil {
		fp.Device = uint64(info.VolumeSerialNumber)
		fp.Inode = uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow)
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
