package sessionlock_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

func TestLockFileSitsBesideTheSessionFile(t *testing.T) {
	p := sessionPath(t)
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
	require.NoError(t, err)
	defer l.Release()

	canon, err := filepath.EvalSymlinks(filepath.Dir(p))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(canon, "session.jsonl"), l.SessionFile())
	require.Equal(t, l.SessionFile()+".lock", l.LockFile())
	st, err := os.Lstat(l.LockFile())
	require.NoError(t, err)
	require.True(t, st.Mode().IsRegular())
	_, err = os.Stat(p)
	require.ErrorIs(t, err, fs.ErrNotExist, "acquiring does not create the session file")
}

func TestSpellingsOfOnePathShareOneLock(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	root := t.TempDir()
	realDir := filepath.Join(root, "real")
	require.NoError(t, os.Mkdir(realDir, 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(root, "other"), 0o755))
	require.NoError(t, os.Symlink(realDir, filepath.Join(root, "linkdir")))
	target := filepath.Join(realDir, "s.jsonl")
	require.NoError(t, os.WriteFile(target, []byte("{}\n"), 0o644))
	require.NoError(t, os.Symlink("real/s.jsonl", filepath.Join(root, "link.jsonl")))
	require.NoError(t, os.Symlink(filepath.Join(realDir, "new.jsonl"), filepath.Join(root, "dangling.jsonl")))
	t.Chdir(filepath.Join(root, "other"))

	spellings := map[string][]string{
		"s.jsonl": {
			target,
			"../real/s.jsonl",
			filepath.Join(root, "other", "..", "real", "s.jsonl"),
			filepath.Join(root, "linkdir", "s.jsonl"),
			filepath.Join(root, "link.jsonl"),
			"../link.jsonl",
		},
		"new.jsonl": {
			filepath.Join(realDir, "new.jsonl"),
			filepath.Join(root, "dangling.jsonl"),
			"../linkdir/new.jsonl",
		},
	}
	for name, paths := range spellings {
		t.Run(name, func(t *testing.T) {
			first, err := sessionlock.AcquireSessionWriteLock(context.Background(), paths[0])
			require.NoError(t, err)
			for _, p := range paths[1:] {
				canon, err := sessionlock.CanonicalPath(p)
				require.NoError(t, err)
				require.Equal(t, first.SessionFile(), canon, "spelling %q", p)

				ctx, cancel := context.WithTimeout(context.Background(), shortWait)
				_, err = sessionlock.AcquireSessionWriteLock(ctx, p)
				cancel()
				require.ErrorIs(t, err, context.DeadlineExceeded, "spelling %q must wait for the same lock", p)
			}
			require.NoError(t, first.Release())
			for _, d := range []string{root, filepath.Join(root, "other")} {
				require.Zero(t, countLocks(t, d), "no lock file beside a link or relative spelling")
			}
			canonDir, err := filepath.EvalSymlinks(realDir)
			require.NoError(t, err)
			require.Equal(t, filepath.Join(canonDir, name+".lock"), first.LockFile())
		})
	}
}

func countLocks(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	require.NoError(t, err)
	return len(m)
}

func TestReleaseTwiceIsANoOp(t *testing.T) {
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), sessionPath(t))
	require.NoError(t, err)
	require.NoError(t, l.Release())
	require.NoError(t, l.Release())
}

func TestLockFileIsNeverRemovedOrReplaced(t *testing.T) {
	p := sessionPath(t)
	var first os.FileInfo
	for i := 0; i < 5; i++ {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
		require.NoError(t, err)
		require.NoError(t, appendLine(p, "x"))
		require.NoError(t, l.Release())
		st, err := os.Stat(l.LockFile())
		require.NoError(t, err, "the lock file stays after release")
		if first == nil {
			first = st
		}
		require.True(t, os.SameFile(first, st), "the lock file keeps its identity")
	}
}

func TestReleaseReportsALostLock(t *testing.T) {
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			p := sessionPath(t)
			l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
			require.NoError(t, err)
			if how == "removed" {
				require.NoError(t, os.Remove(l.LockFile()))
			} else {
				require.NoError(t, os.WriteFile(l.LockFile()+".tmp", nil, 0o644))
				require.NoError(t, os.Rename(l.LockFile()+".tmp", l.LockFile()))
			}
			err = l.Release()
			require.ErrorIs(t, err, sessionlock.ErrLockLost)
			var pe *fs.PathError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, l.LockFile(), pe.Path)

			// The lock was released all the same.
			l2, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
			require.NoError(t, err)
			require.NoError(t, l2.Release())
		})
	}
}

func TestAcquireWithDoneContextFails(t *testing.T) {
	p := sessionPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sessionlock.AcquireSessionWriteLock(ctx, p)
	require.ErrorIs(t, err, context.Canceled)
	_, err = os.Stat(p + ".lock")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// dirState lists a directory's entries with their size and modification
// time, to show that a failed call changed nothing.
func dirState(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		info, err := os.Lstat(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out = append(out, e.Name()+" "+info.Mode().String()+" "+info.ModTime().String()+" "+fmt.Sprint(info.Size()))
	}
	sort.Strings(out)
	return out
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	type setup func(t *testing.T, dir string) string
	cases := []struct {
		name   string
		setup  setup
		target error
		unix   bool
	}{
		{"empty path", func(*testing.T, string) string { return "" }, sessionlock.ErrInvalidPath, false},
		{"NUL byte", func(_ *testing.T, dir string) string { return filepath.Join(dir, "a\x00b.jsonl") }, sessionlock.ErrInvalidPath, false},
		{"directory", func(t *testing.T, dir string) string {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
			return filepath.Join(dir, "sub")
		}, sessionlock.ErrInvalidPath, false},
		{"trailing separator", func(_ *testing.T, dir string) string { return dir + string(filepath.Separator) }, sessionlock.ErrInvalidPath, false},
		{"missing parent directory", func(_ *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "s.jsonl")
		}, sessionlock.ErrInvalidPath, false},
		{"parent is a file", func(t *testing.T, dir string) string {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
			return filepath.Join(dir, "file", "s.jsonl")
		}, sessionlock.ErrInvalidPath, false},
		{"lock path is a symlink", func(t *testing.T, dir string) string {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "elsewhere"), []byte("keep"), 0o644))
			require.NoError(t, os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "s.jsonl.lock")))
			return filepath.Join(dir, "s.jsonl")
		}, sessionlock.ErrLockFileNotRegular, true},
		{"lock path is a dangling symlink", func(t *testing.T, dir string) string {
			require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "s.jsonl.lock")))
			return filepath.Join(dir, "s.jsonl")
		}, sessionlock.ErrLockFileNotRegular, true},
		{"lock path is a directory", func(t *testing.T, dir string) string {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "s.jsonl.lock"), 0o755))
			return filepath.Join(dir, "s.jsonl")
		}, sessionlock.ErrLockFileNotRegular, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unix && runtime.GOOS == "windows" {
				t.Skip("symbolic links need privileges on Windows")
			}
			dir := t.TempDir()
			p := tc.setup(t, dir)
			before := dirState(t, dir)

			_, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
			require.Error(t, err)
			require.ErrorIs(t, err, tc.target)
			var pe *fs.PathError
			require.ErrorAs(t, err, &pe, "file system errors are *fs.PathError")
			require.NotEmpty(t, err.Error())
			t.Log(err)

			require.Equal(t, before, dirState(t, dir), "a rejected call changes nothing on disk")
		})
	}
}

func TestErrorsNameWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	_, err := sessionlock.AcquireSessionWriteLock(context.Background(), filepath.Join(dir, "nope", "s.jsonl"))
	require.ErrorContains(t, err, "does not exist")
	_, err = sessionlock.AcquireSessionWriteLock(context.Background(), dir)
	require.ErrorContains(t, err, "directory")
	_, err = sessionlock.AcquireSessionWriteLock(context.Background(), "")
	require.ErrorContains(t, err, "empty")
	require.False(t, errors.Is(err, sessionlock.ErrLockFileNotRegular))
}

// On POSIX systems "link/.." is the parent of the link's target, and that
// is the file the operating system opens; the lock must be that file's.
func TestDotDotAfterASymlinkFollowsTheLink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows resolves .. lexically")
	}
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	require.NoError(t, os.MkdirAll(deep, 0o755))
	require.NoError(t, os.Symlink(deep, filepath.Join(root, "link")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "a", "s.jsonl"), []byte("{}\n"), 0o644))

	spelled := filepath.Join(root, "link") + "/../s.jsonl" // not cleaned: that would drop the link
	want, err := filepath.EvalSymlinks(filepath.Join(root, "a", "s.jsonl"))
	require.NoError(t, err)
	got, err := sessionlock.CanonicalPath(spelled)
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = sessionlock.CanonicalPath(filepath.Join(root, "a", "s.jsonl") + "/.")
	require.ErrorIs(t, err, sessionlock.ErrInvalidPath, "a file followed by /. names no file")
	_, err = sessionlock.CanonicalPath(root + "/missing/../a/s.jsonl")
	require.ErrorIs(t, err, sessionlock.ErrInvalidPath, "a missing directory cannot be walked through")
}
