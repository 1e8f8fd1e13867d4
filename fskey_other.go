//go:build !linux

package sessionlock

import (
	"fmt"
	"os"
)

// fsKey identifies the file system holding dir by the device number of the
// directory.
func fsKey(dir string) (string, bool) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", false
	}
	fp := fingerprintFromInfo(dir, st)
	return fmt.Sprintf("%x", fp.Device), true
}
