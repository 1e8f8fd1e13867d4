//go:build darwin || freebsd

package sessionlock

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// fsIdentify returns a key for the mounted file system holding dir, its
// type name from statfs, and whether it is a network or FUSE file system.
func fsIdentify(dir string, _ fs.FileInfo) (key, typ string, remote, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", "unknown", false, false
	}
	name := string(bytes.TrimRight(st.Fstypename[:], "\x00"))
	switch {
	case name == "nfs", name == "smbfs", name == "afpfs", name == "webdav", name == "cifs", name == "9p",
		strings.Contains(name, "fuse"):
		remote = true
	}
	return fmt.Sprintf("%v:%s", st.Fsid, name), name, remote, true
}
