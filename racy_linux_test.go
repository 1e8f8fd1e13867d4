//go:build linux

package sessionlock_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sessionlock/sessionlock"
)

// These tests run the racy rule (DESIGN.md section 3) on real file systems:
// an ext4 image made with 128-byte inodes, whose timestamps have a
// resolution of one second, and tmpfs, which has multigrain timestamps on
// Linux 6.13 and later. They need root to mount; without it they skip, and
// with SESSIONLOCK_REQUIRE_ALL=1 they fail instead.
const (
	// coarseImageSize is the size of the ext4 image file.
	coarseImageSize = 24 << 20
	// coarseInodeSize gives ext4 inodes without the extra timestamp
	// fields, so timestamps are whole seconds.
	coarseInodeSize = "128"
	// tmpfsSize bounds each tmpfs mount.
	tmpfsSize = "size=8m"

	// umountAttempts and umountRetryDelay bound how long cleanup retries a
	// busy unmount before it falls back to a lazy one.
	umountAttempts   = 20
	umountRetryDelay = 50 * time.Millisecond

	// The coarse file system takes its timestamps from the kernel's coarse
	// wall clock, cut to whole seconds. A sequence that starts between
	// secondStartSlack and secondLatestStart into a wall-clock second and
	// takes a few milliseconds stays inside one timestamp tick; the slack
	// covers the coarse clock lagging the precise one by a scheduler tick.
	secondStartSlack  = 30 * time.Millisecond
	secondLatestStart = 300 * time.Millisecond

	// Multigrain timestamps on tmpfs arrived in Linux 6.13.
	multigrainMajor = 6
	multigrainMinor = 13

	// Round counts: enough that several rounds share one second with the
	// stat snapshot they race against, few enough to stay fast.
	premiseRounds       = 5
	bypassRounds        = 20
	coTenantRounds      = 8
	childCoTenantRounds = 3
	bypassBetweenRounds = 5

	racySessionLines      = 4
	ownerController       = "controller"
	ownerCompaction       = "compaction"
	ownerHeartbeat        = "heartbeat"
	ownerCron             = "cron"
	racyRewriteChildRole  = "racy-rewrite"
	racySessionName       = "session.jsonl"
	readOnlySessionSubdir = "sessions"
	goraceEnv             = "GORACE"

	// Words of equal length, so that every rewrite keeps the file's size.
	originalWord = "original"
	tamperedWord = "tampered"
	coTenantWord = "cotenant"
)

func init() {
	// racy-rewrite FILE OWNER WORD: one co-tenant tenure that rewrites the
	// session file in place with the same size (the lines of WORD), then
	// prints its generation.
	childModes[racyRewriteChildRole] = func(args []string) int {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := overwriteInPlace(args[0], jsonLinesOf(args[2])); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = l.Release()
			return 1
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(l.Epoch())
		return 0
	}
}

// jsonLinesOf returns a few JSON lines whose text is word. Words of equal
// length give contents of equal length.
func jsonLinesOf(word string) []byte {
	var b bytes.Buffer
	for i := range racySessionLines {
		fmt.Fprintf(&b, "{\"seq\":%d,\"role\":\"assistant\",\"text\":%q}\n", i, word)
	}
	return b.Bytes()
}

// racyRoundWord returns an 8-letter word for a round, the length of the
// other words, so that each round writes different bytes of the same size.
func racyRoundWord(round int) string {
	return fmt.Sprintf("round%03d", round)
}

// overwriteInPlace overwrites the start of path with data without
// truncating or replacing the file, as an in-place save or a buggy tool
// does.
func overwriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// statFields is what a stat-only fence compares.
type statFields struct {
	Inode uint64
	Size  int64
	Mtime syscall.Timespec
	Ctime syscall.Timespec
}

func statOf(t *testing.T, path string) statFields {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st, ok := fi.Sys().(*syscall.Stat_t)
	require.True(t, ok, "stat of %s has no syscall.Stat_t", path)
	return statFields{Inode: st.Ino, Size: st.Size, Mtime: st.Mtim, Ctime: st.Ctim}
}

// bypassRewrite rewrites path in place with content of the same size and
// puts its modification time back, as a careful lock-bypassing tool would.
// Even rounds write at offset 0; odd rounds use os.WriteFile, which
// truncates first.
func bypassRewrite(t *testing.T, path string, data []byte, round int, mtime syscall.Timespec) {
	t.Helper()
	if round%2 == 0 {
		require.NoError(t, overwriteInPlace(path, data))
	} else {
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	require.NoError(t, os.Chtimes(path, time.Time{}, time.Unix(mtime.Unix())))
}

// startEarlyInSecond waits, if needed, until the wall clock is early in a
// second, so that the next few milliseconds of work share one tick of the
// one-second timestamps.
func startEarlyInSecond() {
	now := time.Now()
	start := now.Truncate(time.Second).Add(secondStartSlack)
	if now.After(now.Truncate(time.Second).Add(secondLatestStart)) {
		start = start.Add(time.Second)
	}
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
}

// runMountTool runs an external command and fails the test with its output
// if it fails.
func runMountTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
}

// unmountAtCleanup unmounts dir when the test ends. A mount that stays busy
// (a leaked descriptor) is retried, then detached lazily and reported.
func unmountAtCleanup(t *testing.T, dir string) {
	t.Helper()
	umount := needCommand(t, "umount")
	t.Cleanup(func() {
		// The library keeps recently used lock files open for a moment.
		sessionlock.CloseIdleLockFiles()
		var out []byte
		var err error
		for range umountAttempts {
			out, err = exec.Command(umount, dir).CombinedOutput()
			if err == nil {
				return
			}
			time.Sleep(umountRetryDelay)
		}
		lazyOut, lazyErr := exec.Command(umount, "-l", dir).CombinedOutput()
		msg := fmt.Sprintf("umount %s stayed busy (%v: %s); lazy unmount: %v %s",
			dir, err, bytes.TrimSpace(out), lazyErr, bytes.TrimSpace(lazyOut))
		if t.Failed() {
			t.Log(msg)
		} else {
			t.Error(msg)
		}
	})
}

// mountCoarseExt4 makes an ext4 file system with 128-byte inodes
// (one-second timestamps) on a loop device and returns its mount point.
func mountCoarseExt4(t *testing.T) string {
	t.Helper()
	needRoot(t)
	mkfs := needCommand(t, "mkfs.ext4")
	mount := needCommand(t, "mount")

	img := filepath.Join(t.TempDir(), "coarse.img")
	require.NoError(t, os.WriteFile(img, nil, 0o600))
	require.NoError(t, os.Truncate(img, coarseImageSize))
	runMountTool(t, mkfs, "-q", "-F", "-I", coarseInodeSize, img)

	dir := t.TempDir()
	runMountTool(t, mount, "-o", "loop", img, dir)
	unmountAtCleanup(t, dir)
	return dir
}

// mountTmpfs mounts a small tmpfs and returns its mount point.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	needRoot(t)
	mount := needCommand(t, "mount")

	dir := t.TempDir()
	runMountTool(t, mount, "-t", "tmpfs", "-o", tmpfsSize, "tmpfs", dir)
	unmountAtCleanup(t, dir)
	return dir
}

// remountReadOnly makes the file system mounted at dir read-only.
func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	// The library keeps recently used lock files open for a moment, and a
	// file open for writing makes a read-only remount fail as busy.
	sessionlock.CloseIdleLockFiles()
	runMountTool(t, needCommand(t, "mount"), "-o", "remount,ro", dir)
}

// kernelAtLeast reports whether the running kernel is at least
// major.minor, and its release string.
func kernelAtLeast(t *testing.T, major, minor int) (bool, string) {
	t.Helper()
	var u unix.Utsname
	require.NoError(t, unix.Uname(&u))
	release := unix.ByteSliceToString(u.Release[:])
	var gotMajor, gotMinor int
	_, err := fmt.Sscanf(release, "%d.%d", &gotMajor, &gotMinor)
	require.NoError(t, err, "kernel release %q", release)
	return gotMajor > major || (gotMajor == major && gotMinor >= minor), release
}

// requireBypassRewrite checks that err is a takeover by a bypassing write
// that rewrote the file, and returns the details.
func requireBypassRewrite(t *testing.T, err error, msgAndArgs ...any) *sessionlock.TakeoverError {
	t.Helper()
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover, msgAndArgs...)
	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te, msgAndArgs...)
	require.Equal(t, sessionlock.CauseBypass, te.Cause, msgAndArgs...)
	require.Equal(t, sessionlock.Rewritten, te.Change, msgAndArgs...)
	return te
}

// acquireAndWriteSession takes the lock as owner and writes data as the
// whole session file.
func acquireAndWriteSession(t *testing.T, path, owner string, data []byte) *sessionlock.Lock {
	t.Helper()
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner(owner))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return l
}

func TestRacyTimestampProbe(t *testing.T) {
	t.Run("ext4 with 128-byte inodes is coarse", func(t *testing.T) {
		dir := mountCoarseExt4(t)
		require.False(t, sessionlock.ProbeTimestamps(dir), "probe on one-second ext4")
		require.False(t, sessionlock.FineTimestamps(dir), "cached probe on one-second ext4")
		requireOnlyEntries(t, dir, "lost+found")
	})
	t.Run("tmpfs is fine-grained", func(t *testing.T) {
		if ok, release := kernelAtLeast(t, multigrainMajor, multigrainMinor); !ok {
			t.Skipf("kernel %s predates multigrain tmpfs timestamps (Linux %d.%d)", release, multigrainMajor, multigrainMinor)
		}
		dir := mountTmpfs(t)
		require.True(t, sessionlock.ProbeTimestamps(dir), "probe on multigrain tmpfs")
		require.True(t, sessionlock.FineTimestamps(dir), "cached probe on multigrain tmpfs")
		requireOnlyEntries(t, dir)
	})
}

// requireOnlyEntries checks that dir holds exactly the named entries: the
// probe leaves no scratch file behind.
func requireOnlyEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.ElementsMatch(t, names, entryNames(entries), "entries of %s", dir)
}

func TestRacySameSecondBypassRewriteIsTakeover(t *testing.T) {
	dir := mountCoarseExt4(t)
	path := filepath.Join(dir, racySessionName)

	// Premise: on this file system a same-size rewrite right after a stat
	// leaves size, mtime and ctime as they were, so a stat-only fence
	// cannot see it.
	original, tampered := jsonLinesOf(originalWord), jsonLinesOf(tamperedWord)
	require.Len(t, tampered, len(original))
	for round := range premiseRounds {
		startEarlyInSecond()
		require.NoError(t, os.WriteFile(path, original, 0o644))
		before := statOf(t, path)
		require.NoError(t, overwriteInPlace(path, tampered))
		after := statOf(t, path)
		require.Equal(t, before, after, "premise round %d: same-size rewrite changed stat", round)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, tampered, got)
	}

	// The fence must see every such rewrite, in the same second or not.
	statBlind := 0
	startEarlyInSecond()
	for round := range bypassRounds {
		l := acquireAndWriteSession(t, path, ownerController, original)
		released := l.Epoch()
		fence := sessionlock.NewPromptFence(l)
		t.Cleanup(func() { _ = fence.Close() })
		before := statOf(t, path)
		require.NoError(t, fence.ReleaseForPrompt())

		bypassRewrite(t, path, tampered, round, before.Mtime)
		if statOf(t, path) == before {
			statBlind++
		}

		err := fence.Reacquire(context.Background())
		te := requireBypassRewrite(t, err, "round %d", round)
		require.Equal(t, released, te.Released, "round %d", round)
		require.Equal(t, released+1, te.BreakGeneration, "round %d", round)
		require.Equal(t, released+1, te.Reacquired, "round %d", round)
		require.True(t, fence.TakeoverDetected())
		require.NoError(t, fence.Close(), "round %d", round)
	}
	require.Positive(t, statBlind, "no round rewrote the file within the second of the release snapshot")
	t.Logf("%d of %d bypass rewrites were invisible to stat; the fence caught all", statBlind, bypassRounds)
}

func TestRacyCoTenantSameSizeRewriteIsAccepted(t *testing.T) {
	dir := mountCoarseExt4(t)
	path := filepath.Join(dir, racySessionName)

	original := jsonLinesOf(originalWord)
	l := acquireAndWriteSession(t, path, ownerController, original)
	fence := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = fence.Close() })

	statBlind := 0
	for round := range coTenantRounds {
		startEarlyInSecond()
		require.NoError(t, os.WriteFile(path, original, 0o644), "controller's write under its tenure")
		before := statOf(t, path)
		require.NoError(t, fence.ReleaseForPrompt())

		want := jsonLinesOf(racyRoundWord(round))
		c, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner(ownerCompaction))
		require.NoError(t, err)
		require.NoError(t, overwriteInPlace(path, want))
		require.NoError(t, c.Release())
		blind := statOf(t, path) == before
		if blind {
			statBlind++
		}

		require.NoError(t, fence.Reacquire(context.Background()), "round %d", round)
		requireCoTenantWrote(t, fence.Window(), os.Getpid(), c.Epoch(), blind, round)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.Positive(t, statBlind, "no co-tenant rewrite fell in the fence's second")
}

func TestRacyCoTenantSameSizeRewriteFromOtherProcessIsAccepted(t *testing.T) {
	dir := mountCoarseExt4(t)
	path := filepath.Join(dir, racySessionName)

	original := jsonLinesOf(originalWord)
	l := acquireAndWriteSession(t, path, ownerController, original)
	fence := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = fence.Close() })

	quickChildExit(t)
	statBlind := 0
	for round := range childCoTenantRounds {
		startEarlyInSecond()
		require.NoError(t, os.WriteFile(path, original, 0o644), "controller's write under its tenure")
		before := statOf(t, path)
		require.NoError(t, fence.ReleaseForPrompt())

		word := racyRoundWord(round)
		c := startChild(t, racyRewriteChildRole, path, ownerCompaction, word)
		out, err := io.ReadAll(c.stdout)
		require.NoError(t, err)
		require.Equal(t, 0, c.wait(t), "child co-tenant failed")
		gen, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		require.NoError(t, err, "child output %q", out)
		blind := statOf(t, path) == before
		if blind {
			statBlind++
		}

		require.NoError(t, fence.Reacquire(context.Background()), "round %d", round)
		requireCoTenantWrote(t, fence.Window(), c.cmd.Process.Pid, gen, blind, round)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, jsonLinesOf(word), got)
	}
	require.Positive(t, statBlind, "no co-tenant rewrite fell in the fence's second")
}

// quickChildExit stops children built with -race from sleeping at exit (the
// race runtime waits a second by default), so each child round takes
// milliseconds.
func quickChildExit(t *testing.T) {
	t.Helper()
	const noExitSleep = "atexit_sleep_ms=0"
	if cur := os.Getenv(goraceEnv); cur != "" {
		t.Setenv(goraceEnv, cur+" "+noExitSleep)
	} else {
		t.Setenv(goraceEnv, noExitSleep)
	}
}

// requireCoTenantWrote checks a window with exactly one co-tenant tenure,
// by the compaction owner in process pid at generation gen, that wrote.
func requireCoTenantWrote(t *testing.T, w sessionlock.Window, pid int, gen uint64, statBlind bool, round int) {
	t.Helper()
	require.EqualValues(t, 2, w.Delta(), "round %d: window %+v", round, w)
	require.Zero(t, w.Unrecorded, "round %d", round)
	require.Len(t, w.Tenures, 1, "round %d: window %+v", round, w)
	ct := w.Tenures[0]
	require.Equal(t, gen, ct.Generation, "round %d", round)
	require.Equal(t, w.Released+1, ct.Generation, "round %d", round)
	require.Equal(t, ownerCompaction, ct.Owner, "round %d", round)
	require.Equal(t, pid, ct.PID, "round %d", round)
	require.True(t, ct.Wrote, "round %d: co-tenant rewrote the file but its tenure says it did not "+
		"(rewrite invisible to stat: %v; tenure %d by %s, size %d -> %d)",
		round, statBlind, ct.Generation, ct.Holder, ct.SizeBefore, ct.SizeAfter)
	require.Len(t, w.Writers(), 1, "round %d", round)
}

func TestRacyBypassBetweenCoTenantsIsTakeover(t *testing.T) {
	dir := mountCoarseExt4(t)
	path := filepath.Join(dir, racySessionName)
	ctx := context.Background()
	tampered := jsonLinesOf(tamperedWord)

	statBlind := 0
	startEarlyInSecond()
	for round := range bypassBetweenRounds {
		l := acquireAndWriteSession(t, path, ownerController, jsonLinesOf(originalWord))
		released := l.Epoch()
		fence := sessionlock.NewPromptFence(l)
		t.Cleanup(func() { _ = fence.Close() })
		require.NoError(t, fence.ReleaseForPrompt())

		first, err := sessionlock.AcquireSessionWriteLock(ctx, path, sessionlock.WithOwner(ownerHeartbeat))
		require.NoError(t, err)
		require.NoError(t, overwriteInPlace(path, jsonLinesOf(coTenantWord)))
		require.NoError(t, first.Release())

		before := statOf(t, path)
		bypassRewrite(t, path, tampered, round, before.Mtime)
		if statOf(t, path) == before {
			statBlind++
		}

		second, err := sessionlock.AcquireSessionWriteLock(ctx, path, sessionlock.WithOwner(ownerCron))
		require.NoError(t, err)
		require.NoError(t, second.Release())

		te := requireBypassRewrite(t, fence.Reacquire(ctx), "round %d", round)
		require.Equal(t, released, te.Released, "round %d", round)
		require.Equal(t, second.Epoch(), te.BreakGeneration, "round %d: the break lies between the two co-tenants", round)
		require.Equal(t, released+3, te.Reacquired, "round %d", round)
		require.NoError(t, fence.Close())
	}
	require.Positive(t, statBlind, "no bypass rewrite fell in the first co-tenant's second")
}

func TestReadOnlyMountAcquireFailsAndChangesNothing(t *testing.T) {
	t.Run("no lock file", func(t *testing.T) {
		path := readOnlySession(t, false)
		requireReadOnlyRefusal(t, path)
	})
	t.Run("existing lock file", func(t *testing.T) {
		path := readOnlySession(t, true)
		requireReadOnlyRefusal(t, path)
	})
}

// readOnlySession mounts a tmpfs, writes a session file in a directory on
// it (and, with withLock, a lock file with a ledger from one tenure), then
// remounts it read-only. It returns the session file's path.
func readOnlySession(t *testing.T, withLock bool) string {
	t.Helper()
	mnt := mountTmpfs(t)
	dir := filepath.Join(mnt, readOnlySessionSubdir)
	require.NoError(t, os.Mkdir(dir, 0o755))
	path := filepath.Join(dir, racySessionName)
	require.NoError(t, os.WriteFile(path, jsonLinesOf(originalWord), 0o644))
	if withLock {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner(ownerController))
		require.NoError(t, err)
		require.NoError(t, l.Release())
	}
	remountReadOnly(t, mnt)
	return path
}

// fileContentAndStat is a file's bytes and stat, or its absence.
type fileContentAndStat struct {
	exists bool
	data   []byte
	stat   statFields
}

func readFileState(t *testing.T, path string) fileContentAndStat {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return fileContentAndStat{}
	}
	require.NoError(t, err)
	return fileContentAndStat{exists: true, data: data, stat: statOf(t, path)}
}

func requireReadOnlyRefusal(t *testing.T, path string) {
	t.Helper()
	canon, err := sessionlock.CanonicalPath(path)
	require.NoError(t, err)
	lockPath := canon + ".lock"
	entriesBefore, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	sessionBefore, lockBefore := readFileState(t, path), readFileState(t, lockPath)

	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner(ownerController))
	if l != nil {
		_ = l.Release()
	}
	require.Error(t, err)
	require.Nil(t, l)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, lockPath, pe.Path)
	require.ErrorIs(t, err, syscall.EROFS)
	require.Contains(t, err.Error(), "read-only file system")
	require.Contains(t, err.Error(), lockPath)

	require.Equal(t, sessionBefore, readFileState(t, path), "session file changed")
	require.Equal(t, lockBefore, readFileState(t, lockPath), "lock file changed or created")
	entriesAfter, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, entryNames(entriesBefore), entryNames(entriesAfter))
}

func entryNames(entries []os.DirEntry) []string {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
