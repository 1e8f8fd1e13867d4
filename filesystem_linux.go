package sessionlock

import (
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

func statOf(fi fs.FileInfo) (*syscall.Stat_t, bool) {
	if fi == nil {
		return nil, false
	}
	s, ok := fi.Sys().(*syscall.Stat_t)
	return s, ok
}

// linuxFileSystems names file systems by their statfs magic number. The
// remote ones are network and FUSE file systems, whose stat can change for
// a file nobody touched.
var linuxFileSystems = map[int64]struct {
	name   string
	remote bool
}{
	0xEF53:     {"ext4", false}, // also ext2 and ext3
	0x58465342: {"xfs", false},
	0x9123683E: {"btrfs", false},
	0x01021994: {"tmpfs", false},
	0x794C7630: {"overlayfs", false},
	0x2FC12FC1: {"zfs", false},
	0x4D44:     {"vfat", false},
	0x5346544E: {"ntfs", false},
	0xF2F52010: {"f2fs", false},
	0x6969:     {"nfs", true},
	0x517B:     {"smb", true},
	0xFF534D42: {"cifs", true},
	0xFE534D42: {"smb2", true},
	0x65735546: {"fuse", true}, // also virtiofs, sshfs, rclone, s3fs ...
	0x65735543: {"fusectl", true},
	0x01021997: {"9p", true},
	0x00C36400: {"ceph", true},
	0x5346414F: {"afs", true},
	0x6B414653: {"kafs", true},
	0x73757245: {"coda", true},
	0x564C:     {"ncp", true},
	0x01161970: {"gfs2", true},
	0x7461636F: {"ocfs2", true},
	0x0BD00BD0: {"lustre", true},
	0x47504653: {"gpfs", true},
	0x61636673: {"acfs", true},
	0xAAD7AAEA: {"panfs", true},
	0x013111A8: {"ibrix", true},
	0x19830326: {"fhgfs", true}, // BeeGFS
}

// fsIdentify returns a key for the mounted file system holding dir, its
// type name, and whether it is remote. The key includes the file system id
// from the superblock (for ext4 it derives from the UUID), so a loop
// device reused for another image gets a new key.
func fsIdentify(dir string, hint fs.FileInfo) (key, typ string, remote, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", "unknown", false, false
	}
	var s unix.Stat_t
	if h, isStat := statOf(hint); isStat {
		s.Dev = h.Dev
	} else if err := unix.Stat(dir, &s); err != nil {
		return "", "unknown", false, false
	}
	magic := int64(uint32(st.Type))
	typ = fmt.Sprintf("unknown (0x%x)", magic)
	if fs, found := linuxFileSystems[magic]; found {
		typ, remote = fs.name, fs.remote
	}
	key = fmt.Sprintf("%x:%x:%x:%x", s.Dev, st.Type, st.Fsid.Val[0], st.Fsid.Val[1])
	return key, typ, remote, true
}
