package sessionlock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Fingerprint says whether a file is the same file with the same content as
// before. Its cheap part comes from stat: whether the file exists, its
// identity (device and inode, or the file index on Windows), size, and
// modification and status-change times in nanoseconds. The status-change
// time (ctime) cannot be set by user programs, which makes it the most
// trustworthy of the cheap fields.
//
// Where the file system's timestamps are too coarse to show a change made
// right after the snapshot (the "racy" case), the fingerprint also carries a
// SHA-256 digest of the content, and comparisons use it.
//
// The zero Fingerprint describes a file that does not exist.
type Fingerprint struct {
	Exists bool
	Device uint64
	Inode  uint64
	Size   int64
	// ModTime and ChangeTime are nanoseconds since the Unix epoch. On
	// Windows, ChangeTime is the last write time.
	ModTime    int64
	ChangeTime int64
	// HasDigest says whether Digest holds the SHA-256 of the content.
	HasDigest bool
	Digest    [sha256.Size]byte
}

// FingerprintFile returns the fingerprint of the file at path, including a
// digest of its content (so it reads the whole file). A missing file is not
// an error: it returns a Fingerprint with Exists false. A path that names a
// directory or another non-regular file is an error.
func FingerprintFile(path string) (Fingerprint, error) {
	fp, err := statFingerprint(path)
	if err != nil || !fp.Exists {
		return fp, err
	}
	return withDigest(path)
}

// statFingerprint fills the cheap, stat-based part of a fingerprint.
func statFingerprint(path string) (Fingerprint, error) {
	fp, regular, err := statPath(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Fingerprint{}, nil
	}
	if err != nil {
		return Fingerprint{}, &fs.PathError{Op: "fingerprint", Path: path, Err: unwrapPathError(err)}
	}
	if !regular {
		return Fingerprint{}, &fs.PathError{Op: "fingerprint", Path: path, Err: fmt.Errorf("%w: not a regular file", ErrInvalidPath)}
	}
	return fp, nil
}

// statOrZero is statFingerprint for diagnostics: an error gives the zero
// Fingerprint.
func statOrZero(path string) Fingerprint {
	fp, _ := statFingerprint(path)
	return fp
}

// withDigest returns the fingerprint of the file at path with a content
// digest. The stat fields come from the open file after reading, so that
// digest and stat describe the same file even if it was replaced between
// an earlier stat and the read.
func withDigest(path string) (Fingerprint, error) {
	s, err := scanFile(path, 0)
	return s.fp, err
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sameStat reports whether the stat-based fields of a and b agree.
func (fp Fingerprint) sameStat(b Fingerprint) bool {
	return fp.Exists == b.Exists && fp.Device == b.Device && fp.Inode == b.Inode &&
		fp.Size == b.Size && fp.ModTime == b.ModTime && fp.ChangeTime == b.ChangeTime
}

// Equal reports whether two fingerprints describe the same file state:
// the stat fields agree and, when both carry a digest, so do the digests.
func (fp Fingerprint) Equal(b Fingerprint) bool {
	if !fp.sameStat(b) {
		return false
	}
	return !fp.HasDigest || !b.HasDigest || fp.Digest == b.Digest
}

// ChangeTo classifies the difference between fp (the earlier state) and
// after. It compares content digests only when both fingerprints carry one;
// equal stat fields without digests count as Unchanged.
func (fp Fingerprint) ChangeTo(after Fingerprint) Change {
	switch {
	case !fp.Exists && !after.Exists:
		return Unchanged
	case !fp.Exists:
		return Created
	case !after.Exists:
		return Deleted
	case fp.Device != after.Device || fp.Inode != after.Inode:
		return Replaced
	case after.Size < fp.Size:
		return Truncated
	case after.Size > fp.Size:
		return Appended
	case fp.ModTime != after.ModTime || fp.ChangeTime != after.ChangeTime:
		return Rewritten
	case fp.HasDigest && after.HasDigest && fp.Digest != after.Digest:
		return Rewritten
	}
	return Unchanged
}

// String renders the fingerprint compactly, for logs and error messages.
func (fp Fingerprint) String() string {
	if !fp.Exists {
		return "absent"
	}
	s := fmt.Sprintf("dev=%d ino=%d size=%d mtime=%s ctime=%s", fp.Device, fp.Inode, fp.Size,
		formatNanos(fp.ModTime), formatNanos(fp.ChangeTime))
	if fp.HasDigest {
		s += " sha256=" + hex.EncodeToString(fp.Digest[:8])
	}
	return s
}

func formatNanos(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// Change names what happened to a file between two fingerprints.
type Change int

const (
	// Unchanged: same file, same size, same timestamps (and same content,
	// where digests were compared).
	Unchanged Change = iota + 1
	// Appended: same file, and it grew.
	Appended
	// Truncated: same file, and it shrank.
	Truncated
	// Rewritten: same file and size, but its timestamps or content differ.
	Rewritten
	// Replaced: a different file now stands at the path (for example an
	// atomic write through a temporary file and a rename).
	Replaced
	// Deleted: the file existed and now does not.
	Deleted
	// Created: the file did not exist and now does.
	Created
)

var changeNames = [...]string{
	Unchanged: "unchanged",
	Appended:  "appended",
	Truncated: "truncated",
	Rewritten: "rewritten",
	Replaced:  "replaced",
	Deleted:   "deleted",
	Created:   "created",
}

// String returns the lower-case name of the change, such as "appended".
func (c Change) String() string {
	if c > 0 && int(c) < len(changeNames) {
		return changeNames[c]
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

func parseChange(s string) Change {
	for i, name := range changeNames {
		if name != "" && name == s {
			return Change(i)
		}
	}
	return 0
}
