//go:build unix

package sessionlock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for the parts that judge untrusted input: the comparison of
// fingerprints (FuzzClassify), path canonicalisation (FuzzCanonicalPath),
// and the verdict a fence reaches on a lock file holding arbitrary bytes
// (FuzzFenceOnDamagedLedger). FuzzDecodeLedger, for the ledger decoder
// alone, is in lock_internal_test.go. Seed corpora are in
// testdata/fuzz/<target>/. Identifiers here start with fz.

// fzModes are the fingerprint modes a Change must make sense in.
var fzModes = []FingerprintMode{FingerprintAuto, FingerprintStat, FingerprintContent}

// fzDigest makes a digest from fuzz bytes.
func fzDigest(b []byte) (d [32]byte) {
	copy(d[:], b)
	return d
}

// fzScan is what scanFile returns for a file whose fingerprint is fp: a
// file that exists always carries a digest, one that does not is the zero
// scan.
func fzScan(fp Fingerprint, digest [32]byte) scan {
	if !fp.Exists {
		return scan{}
	}
	fp.HasDigest, fp.Digest = true, digest
	return scan{fp: fp, endsLine: true, prefixEndsLine: true}
}

func fzValidChange(c Change) bool { return c >= Unchanged && c <= Created }

// FuzzClassify compares arbitrary fingerprints with arbitrary scans in
// every mode: it never panics, always names a valid Change, and the Change
// agrees with what it claims (a file that appeared was Created, one that
// grew was Appended, ...). A file compared with itself is Unchanged in every
// mode, and in content mode equal digests are Unchanged whatever stat says.
func FuzzClassify(f *testing.F) {
	f.Add(true, uint64(1), uint64(2), int64(10), int64(100), int64(200), true, []byte("digest-a"),
		true, uint64(1), uint64(2), int64(10), int64(100), int64(200), true, []byte("digest-a"),
		[]byte("digest-a"), false, true, true)
	f.Add(true, uint64(1), uint64(2), int64(10), int64(100), int64(200), true, []byte("digest-a"),
		true, uint64(1), uint64(2), int64(25), int64(101), int64(201), true, []byte("digest-b"),
		[]byte("digest-a"), true, true, true)
	f.Add(false, uint64(0), uint64(0), int64(0), int64(0), int64(0), false, []byte{},
		true, uint64(7), uint64(8), int64(5), int64(1), int64(1), false, []byte("x"),
		[]byte{}, false, true, false)

	f.Fuzz(func(t *testing.T,
		refExists bool, refDev, refIno uint64, refSize, refMtime, refCtime int64, refHasDigest bool, refDigest []byte,
		curExists bool, curDev, curIno uint64, curSize, curMtime, curCtime int64, curHasDigest bool, curDigest []byte,
		prefixDigest []byte, havePrefix, prefixEndsLine, endsLine bool,
	) {
		ref := Fingerprint{Exists: refExists, Device: refDev, Inode: refIno, Size: refSize, ModTime: refMtime, ChangeTime: refCtime,
			HasDigest: refHasDigest, Digest: fzDigest(refDigest)}
		if !ref.HasDigest {
			ref.Digest = [32]byte{}
		}
		cur := Fingerprint{Exists: curExists, Device: curDev, Inode: curIno, Size: curSize, ModTime: curMtime, ChangeTime: curCtime}
		s := fzScan(cur, fzDigest(curDigest))
		s.havePrefix, s.prefixDigest, s.prefixLen = havePrefix, fzDigest(prefixDigest), ref.Size
		s.prefixEndsLine, s.endsLine = prefixEndsLine, endsLine
		// A fingerprint as describeChange may see it: digest or not.
		loose := cur
		loose.HasDigest = curHasDigest
		if loose.HasDigest {
			loose.Digest = fzDigest(curDigest)
		}

		sameIdentity := ref.Device == s.fp.Device && ref.Inode == s.fp.Inode
		for _, mode := range fzModes {
			for _, trust := range []bool{false, true} {
				c := classify(ref, &s, mode, trust)
				require.True(t, fzValidChange(c), "classify gave %v", c)
				switch {
				case !ref.Exists && !s.fp.Exists:
					require.Equal(t, Unchanged, c)
				case !ref.Exists:
					require.Equal(t, Created, c)
				case !s.fp.Exists:
					require.Equal(t, Deleted, c)
				default:
					require.NotContains(t, []Change{Created, Deleted}, c)
				}
				if c == Appended {
					require.Greater(t, s.fp.Size, ref.Size, "appended, but it did not grow")
				}
				if c == Truncated {
					require.Less(t, s.fp.Size, ref.Size, "truncated, but it did not shrink")
				}
				if c == Replaced {
					require.False(t, sameIdentity, "replaced, but device and inode are the same")
				}
				if mode == FingerprintContent && ref.Exists && s.fp.Exists && ref.HasDigest && ref.Digest == s.fp.Digest {
					require.Equal(t, Unchanged, c, "equal content is unchanged in content mode, whatever stat says")
				}
				if mode != FingerprintContent {
					want := ref.ChangeTo(s.fp)
					if !(want == Appended && c == Rewritten) {
						require.Equal(t, want, c, "outside content mode classify follows stat (an append whose prefix changed is a rewrite)")
					}
				}

				// Compared with itself, any state is unchanged.
				self := fzScan(ref, ref.Digest)
				if ref.Exists && !ref.HasDigest {
					self.fp.HasDigest = false
				}
				require.Equal(t, Unchanged, classify(ref, &self, mode, trust), "a file compared with itself")
				require.Equal(t, Unchanged, classify(s.fp, &s, mode, trust), "a scan compared with itself")

				// In content mode, the same content is unchanged even if
				// every stat field flapped.
				if mode == FingerprintContent && ref.Exists && ref.HasDigest && s.fp.Exists {
					flapped := s
					flapped.fp.Digest = ref.Digest
					require.Equal(t, Unchanged, classify(ref, &flapped, mode, trust), "same content, flapping stat")
				}

				d := describeChange(ref, loose, mode, trust)
				require.True(t, fzValidChange(d), "describeChange gave %v", d)
				require.Equal(t, Unchanged, describeChange(loose, loose, mode, trust))
				require.False(t, tenureWrote(loose, loose, mode), "a tenure that found and left the same state wrote nothing")
			}
		}
		require.Equal(t, ref.Equal(loose), loose.Equal(ref), "Equal is symmetric")
		require.True(t, fzValidChange(ref.ChangeTo(loose)))
		require.Equal(t, Unchanged, loose.ChangeTo(loose))
		require.NotEmpty(t, ref.String())
	})
}

// fzFixture lays out a small tree of directories, files and symbolic links
// for FuzzCanonicalPath and returns its root.
func fzFixture(f *testing.F) string {
	f.Helper()
	root := f.TempDir()
	must := func(err error) {
		f.Helper()
		if err != nil {
			f.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dir", "file.jsonl"), []byte("{}\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "dir", "sub", "deep.jsonl"), []byte("{}\n"), 0o644))
	must(os.Symlink(filepath.Join(root, "dir", "sub"), filepath.Join(root, "link-dir")))
	must(os.Symlink(filepath.Join("dir", "file.jsonl"), filepath.Join(root, "rel-link")))
	must(os.Symlink(filepath.Join(root, "dir", "missing.jsonl"), filepath.Join(root, "dangling")))
	must(os.Symlink(filepath.Join("nowhere", "x.jsonl"), filepath.Join(root, "dangling-nodir")))
	must(os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(os.Symlink("dir/", filepath.Join(root, "slash-link")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return root
}

// FuzzCanonicalPath canonicalises arbitrary strings under a directory of
// files, directories and symbolic links (including dangling ones and a
// loop). It never panics; an error is a *fs.PathError, and bad input (empty,
// NUL, a trailing separator, a directory) wraps ErrInvalidPath; a result is
// absolute and clean, canonicalises to itself, is no symbolic link, and
// names the file that the operating system resolves the input to.
func FuzzCanonicalPath(f *testing.F) {
	root := fzFixture(f)
	for _, s := range []string{"dir/file.jsonl", "link-dir/deep.jsonl", "rel-link", "dangling", "loop-a", "dir", "", "a\x00b", "fifo"} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		p := root + "/" + s
		res, err := CanonicalPath(p)
		st, statErr := os.Stat(p)

		slash := strings.LastIndexByte(p, '/')
		dir, last := p[:slash], p[slash+1:]
		namesDir := last == "" || last == "." || last == ".." || (statErr == nil && st.IsDir())
		if err != nil {
			var pe *fs.PathError
			require.ErrorAs(t, err, &pe, "%q: %v", s, err)
			if strings.IndexByte(s, 0) >= 0 || namesDir {
				require.ErrorIs(t, err, ErrInvalidPath, "%q", s)
			}
			require.Empty(t, res)
			return
		}
		require.False(t, namesDir, "%q names a directory, yet it canonicalised to %q", s, res)

		require.True(t, filepath.IsAbs(res), "%q gave %q, not absolute", s, res)
		require.Equal(t, filepath.Clean(res), res, "%q gave %q, not clean", s, res)
		again, err := CanonicalPath(res)
		require.NoError(t, err, "%q gave %q, which does not canonicalise", s, res)
		require.Equal(t, res, again, "%q gave %q, which canonicalises to %q", s, res, again)
		if lst, err := os.Lstat(res); err == nil {
			require.Zero(t, lst.Mode()&fs.ModeSymlink, "%q gave %q, a symbolic link", s, res)
		}

		// The canonical path names the file the input names. A path that
		// the operating system resolves to an existing file must give that
		// file, and a path whose directory the operating system cannot
		// find must be refused: it has no directory, and the canonical
		// path would name some other file.
		if statErr == nil {
			rst, err := os.Stat(res)
			require.NoError(t, err, "%q names an existing file, but its canonical path %q does not", s, res)
			require.True(t, os.SameFile(st, rst), "%q and its canonical path %q name different files", s, res)
		}
		if dir != "" {
			var dst syscall.Stat_t
			if err := syscall.Stat(dir, &dst); errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
				t.Fatalf("%q: the operating system finds no directory %q (%v), yet it canonicalised to %q", s, dir, err, res)
			}
		}
	})
}

// FuzzFenceOnDamagedLedger writes arbitrary bytes into the lock file while a
// fence is released for a prompt, then reacquires. It never panics or
// hangs, and a lock file that does not decode as a ledger (missing, empty,
// corrupt, truncated) is unknown history: the verdict is a takeover, never
// an accepted window.
func FuzzFenceOnDamagedLedger(f *testing.F) {
	dir := f.TempDir()
	seedFile := filepath.Join(dir, "seed.jsonl")
	l, err := AcquireSessionWriteLock(context.Background(), seedFile)
	require.NoError(f, err)
	_, err = l.Append([]byte("{\"turn\":1}\n"))
	require.NoError(f, err)
	require.NoError(f, l.Release())
	valid, err := os.ReadFile(seedFile + lockSuffix)
	require.NoError(f, err)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte("garbage\n"))

	f.Fuzz(func(t *testing.T, raw []byte) {
		file := filepath.Join(t.TempDir(), "s.jsonl")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := AcquireSessionWriteLock(ctx, file, WithOwner("controller"))
		require.NoError(t, err)
		_, err = l.Append([]byte("{\"turn\":1}\n"))
		require.NoError(t, err)
		fence := NewPromptFence(l)
		defer fence.Close()
		require.NoError(t, fence.ReleaseForPrompt())

		require.NoError(t, os.WriteFile(file+lockSuffix, raw, 0o644))
		_, decodeErr := decodeLedger(raw)

		err = fence.Reacquire(ctx)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "Reacquire hung on a damaged lock file")
		if decodeErr != nil {
			require.ErrorIs(t, err, ErrSessionTakeover, "a lock file that is no ledger (%v) must not yield an accepted window", decodeErr)
			var te *TakeoverError
			require.ErrorAs(t, err, &te)
			require.Contains(t, []Cause{CauseUnknownHistory, CauseGenerationRegressed}, te.Cause, "%v", te)
		}
		require.NotNil(t, fence.Lock(), "the fence holds the lock after Reacquire returned a verdict")
		require.NoError(t, fence.Close())

		// Whatever was there, the tenure left a sound ledger behind.
		after, err := os.ReadFile(file + lockSuffix)
		require.NoError(t, err)
		_, err = decodeLedger(after)
		require.NoError(t, err, "the ledger the next tenure wrote must decode")
	})
}
