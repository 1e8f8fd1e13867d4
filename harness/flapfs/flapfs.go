// Package flapfs is a FUSE pass-through file system whose stat flaps, for
// testing the sessionlock fences on a real mount.
//
// # What it perturbs
//
// A flapfs mount shows the files of a backing directory unchanged: the same
// names, sizes and bytes, and every write goes through to the backing file.
// What it changes is what stat says about regular files. On every attribute
// reply the kernel receives (GETATTR, with or without a file handle, STATX,
// SETATTR, and the attributes that come with LOOKUP, CREATE, MKNOD, LINK and
// TMPFILE), it
//
//   - adds an offset that grows with every reply to the inode number, so two
//     stats of one file never report the same st_ino;
//   - moves mtime and ctime, independently, by a random amount of up to
//     Options.TimeJitter (3 seconds by default) either way, measured from
//     the backing file's real times.
//
// Size, mode, link count, owner and content are never touched, and nothing
// is perturbed for directories or symbolic links.
//
// # Why
//
// This is how SMB/CIFS clients (and some NFS and FUSE file systems) behave:
// inode numbers synthesised by the client or the server change from one
// stat to the next, and mtime and ctime move for a file nobody wrote (time
// rounding, server-side metadata updates, attribute caches that disagree).
// A fence that compares stat snapshots reports a takeover on every prompt
// window there, and a lock that checks the identity of its lock file by
// inode number never sees the same file twice. sessionlock detects such
// file systems (statfs says "fuse") and verifies content instead; flapfs
// lets the tests prove that this holds on a real kernel mount.
//
// # How
//
// The node layer is go-fuse's loopback (fs.NewLoopbackRoot). The
// perturbation sits one level lower, in a fuse.RawFileSystem wrapper that
// rewrites the attributes on their way to the kernel. It cannot sit in a
// node's Getattr: go-fuse's bridge overwrites the inode number in every
// attribute reply with the node's stable one, and making that stable number
// change would give the kernel a new inode (a new node id) for every lookup.
// The kernel keeps file locks on its inode, so flock would then stop
// excluding anyone, which is not what SMB clients do: their kernel keeps one
// inode per file and only the reported number flaps. Rewriting the reply
// keeps the node id (and so the kernel inode and its locks) stable while
// st_ino, st_mtime and st_ctime flap.
//
// Attribute and entry caching are off (zero timeouts) and READDIRPLUS is
// disabled, so every stat reaches the server and every attribute the
// kernel sees went through the wrapper. File locking is not forwarded to
// the server (MountOptions.EnableLocks is false), so the kernel implements
// flock(2) itself, across processes, as it does for local file systems.
//
// Mounting needs root (or CAP_SYS_ADMIN) and /dev/fuse; it uses mount(2)
// directly, without fusermount.
package flapfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// DefaultTimeJitter is how far mtime and ctime move, at most, either way,
// when Options.TimeJitter is zero.
const DefaultTimeJitter = 3 * time.Second

// inoStride is the step added to a reported inode number per reply. It
// keeps the perturbed numbers far from the real ones and from each other.
const inoStride = 1 << 32

// Options configures a mount.
type Options struct {
	// Plain turns perturbation off: the mount is a plain pass-through with
	// the same settings otherwise (no attribute caching, kernel flock), for
	// comparison.
	Plain bool
	// TimeJitter bounds the random shift of mtime and ctime; zero means
	// DefaultTimeJitter.
	TimeJitter time.Duration
	// Debug logs every FUSE request and reply.
	Debug bool
}

// FS is a mounted flapfs file system.
type FS struct {
	// Dir is the mount point: use paths under it.
	Dir string
	// Backing is the real directory whose files the mount shows.
	Backing string

	server *fuse.Server
	raw    *flappingFS
}

// Mount mounts a flapfs view of backing at dir, which must be an existing
// empty directory, and serves it until Unmount.
func Mount(dir, backing string, opts Options) (*FS, error) {
	if opts.TimeJitter == 0 {
		opts.TimeJitter = DefaultTimeJitter
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, err
	}
	zero := time.Duration(0)
	fsOpts := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMountStrict:  true,
			FsName:             "flapfs:" + backing,
			Name:               "flapfs",
			DisableReadDirPlus: true,
			Debug:              opts.Debug,
		},
	}
	raw := &flappingFS{
		RawFileSystem: fs.NewNodeFS(root, fsOpts),
		plain:         opts.Plain,
		jitter:        int64(opts.TimeJitter),
	}
	server, err := fuse.NewServer(raw, dir, &fsOpts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("flapfs: mount %s: %w", dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return nil, fmt.Errorf("flapfs: mount %s: %w", dir, err)
	}
	return &FS{Dir: dir, Backing: backing, server: server, raw: raw}, nil
}

// Unmount unmounts the file system and waits until the server has stopped.
// If the mount is busy, it detaches it (MNT_DETACH) so that none is left
// behind, and reports the busy error.
func (f *FS) Unmount() error {
	if f.server == nil {
		return nil
	}
	err := f.server.Unmount()
	if err != nil {
		if derr := unix.Unmount(f.Dir, unix.MNT_DETACH); derr != nil && !errors.Is(derr, syscall.EINVAL) {
			return errors.Join(err, derr)
		}
		f.server.Wait()
	}
	f.server = nil
	return err
}

// Perturbed returns how many attribute replies have been perturbed so far.
func (f *FS) Perturbed() uint64 { return f.raw.perturbed.Load() }

// flappingFS rewrites the attributes of regular files in every reply that
// carries them. Everything else goes to the embedded node file system.
type flappingFS struct {
	fuse.RawFileSystem
	plain     bool
	jitter    int64 // nanoseconds
	seq       atomic.Uint64
	perturbed atomic.Uint64
}

// shift returns a random offset in [-jitter, +jitter] nanoseconds.
func (r *flappingFS) shift() int64 { return rand.Int64N(2*r.jitter+1) - r.jitter }

func (r *flappingFS) attr(a *fuse.Attr) {
	if r.plain || a.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	a.Ino += r.seq.Add(1) * inoStride
	a.Mtime, a.Mtimensec = addNanos(a.Mtime, a.Mtimensec, r.shift())
	a.Ctime, a.Ctimensec = addNanos(a.Ctime, a.Ctimensec, r.shift())
	r.perturbed.Add(1)
}

func (r *flappingFS) statx(s *fuse.Statx) {
	if r.plain || uint32(s.Mode)&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	s.Ino += r.seq.Add(1) * inoStride
	s.Mtime.Sec, s.Mtime.Nsec = addNanos(s.Mtime.Sec, s.Mtime.Nsec, r.shift())
	s.Ctime.Sec, s.Ctime.Nsec = addNanos(s.Ctime.Sec, s.Ctime.Nsec, r.shift())
	r.perturbed.Add(1)
}

func addNanos(sec uint64, nsec uint32, d int64) (uint64, uint32) {
	t := max(int64(sec)*1e9+int64(nsec)+d, 0)
	return uint64(t / 1e9), uint32(t % 1e9)
}

func (r *flappingFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	st := r.RawFileSystem.Lookup(cancel, header, name, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	st := r.RawFileSystem.GetAttr(cancel, in, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	st := r.RawFileSystem.SetAttr(cancel, in, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	st := r.RawFileSystem.Statx(cancel, in, out)
	if st.Ok() {
		r.statx(&out.Statx)
	}
	return st
}

func (r *flappingFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	st := r.RawFileSystem.Mknod(cancel, in, name, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	st := r.RawFileSystem.Link(cancel, in, name, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	st := r.RawFileSystem.Create(cancel, in, name, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}

func (r *flappingFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	st := r.RawFileSystem.Tmpfile(cancel, in, out)
	if st.Ok() {
		r.attr(&out.Attr)
	}
	return st
}
