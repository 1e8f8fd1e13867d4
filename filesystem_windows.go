package sessionlock

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// fsIdentify returns a key for the volume holding dir, its file system name
// (NTFS, ReFS, FAT32, ...), and whether it is a network drive.
func fsIdentify(dir string, _ fs.FileInfo) (key, typ string, remote, ok bool) {
	root := filepath.VolumeName(dir) + `\`
	p, err := windows.UTF16PtrFromString(root)
	if err != nil {
		return "", "unknown", false, false
	}
	var serial uint32
	name := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumeInformation(p, nil, 0, &serial, nil, nil, &name[0], uint32(len(name))); err != nil {
		return "", "unknown", windows.GetDriveType(p) == windows.DRIVE_REMOTE, false
	}
	typ = windows.UTF16ToString(name)
	remote = windows.GetDriveType(p) == windows.DRIVE_REMOTE
	return fmt.Sprintf("%x:%s", serial, typ), typ, remote, true
}
