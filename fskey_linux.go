package sessionlock

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fsKey identifies the mounted file system holding dir. The file system id
// comes from the superblock (for ext4 it derives from the UUID), so a loop
// device reused for another image gets a new key.
func fsKey(dir string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", false
	}
	var s unix.Stat_t
	if err := unix.Stat(dir, &s); err != nil {
		return "", false
	}
	return fmt.Sprintf("%x:%x:%x:%x", s.Dev, st.Type, st.Fsid.Val[0], st.Fsid.Val[1]), true
}
