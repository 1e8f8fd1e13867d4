//go:build !linux && !darwin && !freebsd && !windows

package sessionlock

import (
	"fmt"
	"io/fs"
	"os"
)

// fsIdentify on other platforms knows only the device number of dir, so the
// type is unknown and no file system counts as remote.
func fsIdentify(dir string, _ fs.FileInfo) (key, typ string, remote, ok bool) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", "unknown", false, false
	}
	return fmt.Sprintf("%x", fingerprintFromInfo(dir, st).Device), "unknown", false, true
}
