package flapfs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
	"github.com/sessionlock/sessionlock/harness/flapfs"
)

// The premise: on a flapfs mount, stat of a file nobody touches reports a
// different inode number, mtime and ctime every time, while size and
// content stay put; on a plain pass-through mount it does not.
func TestStatFlapsOnMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	p := filepath.Join(fsys.Dir, "session.jsonl")
	content := "{\"turn\":0}\n{\"turn\":1}\n"
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	real0 := statT(t, filepath.Join(fsys.Backing, "session.jsonl"))

	before := fsys.Perturbed()
	a, b := statT(t, p), statT(t, p)
	require.NotEqual(t, a.Ino, b.Ino, "inode number must flap")
	require.NotEqual(t, a.Mtim, b.Mtim, "mtime must flap")
	require.NotEqual(t, a.Ctim, b.Ctim, "ctime must flap")
	require.Equal(t, a.Dev, b.Dev)
	require.Equal(t, int64(len(content)), a.Size)
	require.Equal(t, a.Size, b.Size)
	require.GreaterOrEqual(t, fsys.Perturbed()-before, uint64(2), "every stat must reach the server")

	// fstat on one open file flaps too (GETATTR with a file handle).
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	var c, d syscall.Stat_t
	require.NoError(t, syscall.Fstat(int(f.Fd()), &c))
	require.NoError(t, syscall.Fstat(int(f.Fd()), &d))
	require.NotEqual(t, c.Ino, d.Ino)
	require.NotEqual(t, c.Mtim, d.Mtim)
	require.NotEqual(t, c.Ctim, d.Ctim)

	// As the library sees it: two fingerprints of the unchanged file differ
	// in every stat field but size, and agree in content.
	fp1, err := sessionlock.FingerprintFile(p)
	require.NoError(t, err)
	fp2, err := sessionlock.FingerprintFile(p)
	require.NoError(t, err)
	require.NotEqual(t, fp1.Inode, fp2.Inode)
	require.NotEqual(t, fp1.ModTime, fp2.ModTime)
	require.NotEqual(t, fp1.ChangeTime, fp2.ChangeTime)
	require.Equal(t, fp1.Size, fp2.Size)
	require.Equal(t, fp1.Digest, fp2.Digest)
	require.False(t, fp1.Equal(fp2))

	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, content, string(got))
	// Nobody wrote: the backing file's real times did not move.
	real1 := statT(t, filepath.Join(fsys.Backing, "session.jsonl"))
	require.Equal(t, real0.Mtim, real1.Mtim)
	require.Equal(t, real0.Ctim, real1.Ctim)

	t.Run("plain mount does not flap", func(t *testing.T) {
		plain := mount(t, flapfs.Options{Plain: true})
		p := filepath.Join(plain.Dir, "session.jsonl")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		a, b := statT(t, p), statT(t, p)
		require.Equal(t, a.Ino, b.Ino)
		require.Equal(t, a.Mtim, b.Mtim)
		require.Equal(t, a.Ctim, b.Ctim)
		require.Zero(t, plain.Perturbed())
	})
}

// flock(2) on the mount excludes across open file descriptions and across
// processes (util-linux flock(1)), although the inode number flaps: the
// kernel keeps the locks on its inode, which stays one.
func TestFlockExcludesOnMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	p := filepath.Join(fsys.Dir, "session.jsonl.lock")
	require.NoError(t, os.WriteFile(p, nil, 0o644))

	f1, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f1.Close()
	f2, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f2.Close()

	require.Equal(t, 0, flockStatus(t, p), "nobody holds it yet")
	require.NoError(t, syscall.Flock(int(f1.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	require.ErrorIs(t, syscall.Flock(int(f2.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
	require.Equal(t, 1, flockStatus(t, p), "flock(1) in another process must be excluded")
	require.NoError(t, syscall.Flock(int(f1.Fd()), syscall.LOCK_UN))
	require.NoError(t, syscall.Flock(int(f2.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	require.Equal(t, 1, flockStatus(t, p))
	require.NoError(t, syscall.Flock(int(f2.Fd()), syscall.LOCK_UN))
	require.Equal(t, 0, flockStatus(t, p))
}

// The library recognises the mount as FUSE, remote, and verifies content
// there by default; locks and fences on it report FingerprintContent.
func TestInspectFileSystemOnMount(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			fsys := mount(t, flapfs.Options{Plain: plain})
			info, err := sessionlock.InspectFileSystem(fsys.Dir)
			require.NoError(t, err)
			require.Equal(t, "fuse", info.Type)
			require.True(t, info.Remote)
			require.Equal(t, sessionlock.FingerprintContent, info.AutoMode())

			p := filepath.Join(fsys.Dir, "session.jsonl")
			l := acquire(t, p, sessionlock.WithOwner("controller"))
			require.Equal(t, sessionlock.FingerprintContent, l.FingerprintMode())
			pf := sessionlock.NewPromptFence(l)
			require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
			require.NoError(t, pf.ReleaseForPrompt())
			require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
			require.NoError(t, reacquire(pf))
			require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
			require.NoError(t, pf.Close())
		})
	}
}

// The lock works on the flapping mount: acquiring returns at once (the
// identity check of the locked lock file does not retry although every
// stat of it shows another inode), Release reports no lost lock, and other
// processes are excluded while it is held.
func TestLockOnFlappingMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	p := filepath.Join(fsys.Dir, "session.jsonl")
	rec := &recorder{}
	logger := sessionlockLogger(rec)

	start := time.Now()
	l := acquire(t, p, sessionlock.WithOwner("controller"), logger)
	took := time.Since(start)
	require.Less(t, took, 2*time.Second, "acquire must not spin on a flapping inode")
	require.Zero(t, rec.count(msgRetry), "the identity check retried: %v", rec.msgs)
	_, err := l.Append([]byte("{\"turn\":0}\n"))
	require.NoError(t, err)

	// The lock file's inode flaps while we hold it.
	a, b := statT(t, l.LockFile()), statT(t, l.LockFile())
	require.NotEqual(t, a.Ino, b.Ino)

	// Excluded: util-linux flock(1) and a second process using the library.
	require.Equal(t, 1, flockStatus(t, l.LockFile()))
	out, status := runChild(t, "try", p, "300ms")
	require.Equal(t, exitExcluded, status, "child output: %s", out)
	require.Equal(t, "excluded controller", out)

	require.NoError(t, l.Release(), "no false ErrLockLost")
	require.Zero(t, rec.count(msgLost))
	require.Equal(t, 0, flockStatus(t, l.LockFile()))
	out, status = runChild(t, "try", p, "5s")
	require.Equal(t, 0, status, "child output: %s", out)
	require.Equal(t, "acquired", out)

	// Many tenures in a row: each acquire is prompt and each release clean.
	var slowest time.Duration
	for i := 0; i < 50; i++ {
		start := time.Now()
		l := acquire(t, p, sessionlock.WithOwner("cron"), logger)
		slowest = max(slowest, time.Since(start))
		_, err := l.Append([]byte(fmt.Sprintf("{\"cron\":%d}\n", i)))
		require.NoError(t, err)
		require.NoError(t, l.Release())
	}
	t.Logf("first acquire %v, slowest of 50 more %v", took, slowest)
	require.Less(t, slowest, 2*time.Second)
	require.Zero(t, rec.count(msgRetry), "the identity check retried: %v", rec.msgs)
	require.Zero(t, rec.count(msgLost))
}

// The flock-probe fallback that replaces the inode comparison on this
// mount still catches a lock file that was removed or replaced during a
// tenure: Release reports ErrLockLost and a fence reports CauseLockLost.
func TestLockLossDetectedOnFlappingMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	replace := func(t *testing.T, lockPath string) {
		tmp := lockPath + ".new"
		require.NoError(t, os.WriteFile(tmp, nil, 0o644))
		require.NoError(t, os.Rename(tmp, lockPath))
	}
	for i, c := range []struct {
		name   string
		change func(t *testing.T, lockPath string)
	}{
		{"replaced", replace},
		{"removed", func(t *testing.T, lockPath string) { require.NoError(t, os.Remove(lockPath)) }},
	} {
		t.Run(c.name+"/Release", func(t *testing.T) {
			p := filepath.Join(fsys.Dir, fmt.Sprintf("release%d.jsonl", i))
			l := acquire(t, p, sessionlock.WithOwner("cron"))
			c.change(t, l.LockFile())
			err := l.Release()
			require.ErrorIs(t, err, sessionlock.ErrLockLost)
		})
		t.Run(c.name+"/fence", func(t *testing.T) {
			p := filepath.Join(fsys.Dir, fmt.Sprintf("fence%d.jsonl", i))
			pf := openFence(t, p, "{\"turn\":0}\n")
			c.change(t, pf.Lock().LockFile())
			// The file did not exist when the tenure began; the tenure
			// created it.
			requireTakeover(t, pf.ReleaseForPrompt(), sessionlock.CauseLockLost, sessionlock.Created)
		})
		t.Run(c.name+"/fence without writes", func(t *testing.T) {
			p := filepath.Join(fsys.Dir, fmt.Sprintf("idle%d.jsonl", i))
			l := acquire(t, p, sessionlock.WithOwner("setup"))
			_, err := l.Append([]byte("{\"turn\":0}\n"))
			require.NoError(t, err)
			require.NoError(t, l.Release())

			pf := openFence(t, p, "")
			c.change(t, pf.Lock().LockFile())
			// Nobody touched the session file in this tenure. In content
			// mode an unchanged file is Unchanged "whatever its inode
			// number or timestamps say". (Fails at the time of writing:
			// PromptFence.ReleaseForPrompt in fence.go names the change
			// with l.acquired.ChangeTo(statOrZero(...)), a stat-only
			// comparison, so the flapping inode reads as Replaced.)
			requireTakeover(t, pf.ReleaseForPrompt(), sessionlock.CauseLockLost, sessionlock.Unchanged)
		})
	}
}

// A ledger reset to an older generation while the fence was released is a
// takeover with CauseGenerationRegressed. The session file itself was not
// touched, so in content mode its Change is Unchanged; on the local disk
// (the control) it is, and on the flapping mount it must be too.
func TestGenerationRegressionOnFlappingMount(t *testing.T) {
	for _, where := range []string{"local", "mount"} {
		t.Run(where, func(t *testing.T) {
			var dir string
			if where == "local" {
				dir = localDir(t)
			} else {
				dir = mount(t, flapfs.Options{}).Dir
			}
			p := filepath.Join(dir, "session.jsonl")
			content := sessionlock.WithFingerprintMode(sessionlock.FingerprintContent)
			l := acquire(t, p, sessionlock.WithOwner("setup"), content)
			_, err := l.Append([]byte("{\"turn\":0}\n"))
			require.NoError(t, err)
			require.NoError(t, l.Release())
			oldLedger, err := os.ReadFile(l.LockFile())
			require.NoError(t, err)

			pf := openFence(t, p, "", content)
			require.NoError(t, pf.ReleaseForPrompt())
			// Put the older ledger back, in place, while nobody holds the
			// lock.
			require.NoError(t, os.WriteFile(l.LockFile(), oldLedger, 0o644))
			// (Fails on the mount at the time of writing: verdict in
			// fence.go names the change with
			// pf.releasedFP.ChangeTo(l.acquired), which compares inode
			// numbers before digests, so the flapping inode reads as
			// Replaced although both fingerprints carry equal digests.)
			te := requireTakeover(t, reacquire(pf), sessionlock.CauseGenerationRegressed, sessionlock.Unchanged)
			require.Equal(t, te.Released, te.Reacquired)
		})
	}
}

// sessionlockLogger returns the option that sends the lock's diagnostics to
// rec.
func sessionlockLogger(rec *recorder) sessionlock.Option {
	return sessionlock.WithLogger(slogLogger(rec))
}

// 100 prompt windows with only co-tenant writes: in-process co-tenants that
// append through Lock.Append, a reader now and then, and in a few windows a
// co-tenant in another process. Every Reacquire accepts, and the window
// names the co-tenants that wrote, although every stat of the session file
// and of the lock file flaps.
func TestFenceAcceptsCoTenantsOnFlappingMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	p := filepath.Join(fsys.Dir, "session.jsonl")
	rec := &recorder{}
	logger := sessionlockLogger(rec)

	want := "{\"turn\":0}\n"
	pf := openFence(t, p, want, logger)
	require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())

	const windows = 100
	childWindows := 0
	for i := 0; i < windows; i++ {
		require.NoError(t, pf.ReleaseForPrompt(), "window %d", i)

		type writer struct {
			owner string
			pid   int
		}
		var writers []writer
		tenures := 0
		n := 1 + i%3
		for j := 0; j < n; j++ {
			owner := fmt.Sprintf("heartbeat-%d-%d", i, j)
			l := acquire(t, p, sessionlock.WithOwner(owner), logger)
			line := fmt.Sprintf("{\"beat\":%d,\"of\":%d}\n", j, i)
			_, err := l.Append([]byte(line))
			require.NoError(t, err)
			require.NoError(t, l.Release(), "co-tenant %s", owner)
			want += line
			writers = append(writers, writer{owner, os.Getpid()})
			tenures++
			if i%10 == 3 && j == 0 {
				// A co-tenant that only reads.
				r := acquire(t, p, sessionlock.WithOwner("reader"), logger)
				require.NoError(t, r.Release())
				tenures++
			}
		}
		if i%20 == 7 {
			childWindows++
			owner := fmt.Sprintf("child-%d", i)
			line := fmt.Sprintf("{\"child\":%d}", i)
			out, status := runChild(t, "append", p, owner, line)
			require.Equal(t, 0, status, "child co-tenant failed: %s", out)
			fields := strings.Fields(out)
			require.Len(t, fields, 2, "child output %q", out)
			pid, err := strconv.Atoi(fields[0])
			require.NoError(t, err)
			require.NotEqual(t, os.Getpid(), pid)
			want += line + "\n"
			writers = append(writers, writer{owner, pid})
			tenures++
		}

		require.NoError(t, reacquire(pf), "window %d: false takeover", i)
		w := pf.Window()
		require.Equal(t, uint64(tenures+1), w.Delta(), "window %d", i)
		require.Zero(t, w.Unrecorded)
		require.Len(t, w.Tenures, tenures)
		var got []writer
		for _, tn := range w.Writers() {
			got = append(got, writer{tn.Owner, tn.PID})
			require.Greater(t, tn.SizeAfter, tn.SizeBefore)
		}
		require.Equal(t, writers, got, "window %d writers", i)

		line := fmt.Sprintf("{\"turn\":%d}\n", i+1)
		_, err := pf.Lock().Append([]byte(line))
		require.NoError(t, err)
		want += line
	}
	require.Equal(t, 5, childWindows)
	require.False(t, pf.TakeoverDetected())
	require.NoError(t, pf.Close())

	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "every acknowledged append is in the file")
	require.Zero(t, rec.count(msgRetry), "identity check retried")
	require.Zero(t, rec.count(msgLost), "false lost lock")
	require.Zero(t, rec.count("chain broken"), "a break was recorded")
	require.Zero(t, rec.count("takeover"))
}

// Every kind of change made while nobody holds the lock is still caught on
// the flapping mount in automatic (content) mode.
func TestFenceCatchesBypassOnFlappingMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	const initial = "{\"turn\":0}\n{\"turn\":1}\n"
	caseNo := 0
	setup := func(t *testing.T, initial string) (string, string, *sessionlock.PromptFence) {
		caseNo++
		dir := filepath.Join(fsys.Dir, fmt.Sprintf("case%d", caseNo))
		require.NoError(t, os.Mkdir(dir, 0o755))
		p := filepath.Join(dir, "session.jsonl")
		pf := openFence(t, p, initial)
		require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
		require.NoError(t, pf.ReleaseForPrompt())
		return p, filepath.Join(fsys.Backing, fmt.Sprintf("case%d", caseNo), "session.jsonl"), pf
	}

	t.Run("append complete line", func(t *testing.T) {
		p, _, pf := setup(t, initial)
		const line = "{\"bypass\":true}\n"
		appendBytes(t, p, line)
		te := requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Appended)
		require.True(t, te.PureAppend(), "%+v", te)
		require.True(t, te.PrefixVerified)
		require.True(t, te.CompleteLines)
		require.Equal(t, int64(len(initial)), te.AppendedFrom)
		require.Equal(t, int64(len(initial)+len(line)), te.AppendedTo)
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, line, string(got[te.AppendedFrom:te.AppendedTo]))
	})
	t.Run("append partial line", func(t *testing.T) {
		p, _, pf := setup(t, initial)
		appendBytes(t, p, "{\"bypass\":")
		te := requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Appended)
		require.True(t, te.PrefixVerified)
		require.False(t, te.CompleteLines)
		require.False(t, te.PureAppend())
		require.Equal(t, int64(len(initial)), te.AppendedFrom)
		require.Equal(t, int64(len(initial)+len("{\"bypass\":")), te.AppendedTo)
	})
	t.Run("rewrite with the old content cut short then extended", func(t *testing.T) {
		// Grows, but the old bytes did not survive: not an append.
		p, _, pf := setup(t, initial)
		require.NoError(t, os.WriteFile(p, []byte("{\"turn\":9}\n{\"turn\":1}\n{\"x\":2}\n"), 0o644))
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Rewritten)
	})
	t.Run("truncate", func(t *testing.T) {
		p, _, pf := setup(t, initial)
		require.NoError(t, os.Truncate(p, int64(len("{\"turn\":0}\n"))))
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Truncated)
	})
	t.Run("same-size rewrite with mtime restored", func(t *testing.T) {
		p, backing, pf := setup(t, initial)
		real0 := statT(t, backing)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte("{\"turn\":7}"), 0)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		mtime := time.Unix(real0.Mtim.Unix())
		require.NoError(t, os.Chtimes(p, time.Unix(real0.Atim.Unix()), mtime))
		real1 := statT(t, backing)
		require.Equal(t, real0.Mtim, real1.Mtim, "mtime restored on the backing file")
		require.Equal(t, real0.Size, real1.Size)
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Rewritten)
	})
	t.Run("replace by rename with different content", func(t *testing.T) {
		p, backing, pf := setup(t, initial)
		ino0 := statT(t, backing).Ino
		atomicReplace(t, p, strings.Replace(initial, "0", "5", 1))
		require.NotEqual(t, ino0, statT(t, backing).Ino, "the backing file is a new file")
		// Where inode numbers flap, identity is not evidence, so the
		// library names the change by content: same size, other bytes.
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Rewritten)
	})
	t.Run("replace by rename with shorter content", func(t *testing.T) {
		p, _, pf := setup(t, initial)
		atomicReplace(t, p, "{}\n")
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Truncated)
	})
	t.Run("delete", func(t *testing.T) {
		p, _, pf := setup(t, initial)
		require.NoError(t, os.Remove(p))
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Deleted)
	})
	t.Run("create", func(t *testing.T) {
		p, _, pf := setup(t, "")
		_, err := os.Stat(p)
		require.ErrorIs(t, err, os.ErrNotExist)
		require.NoError(t, os.WriteFile(p, []byte("{\"new\":true}\n"), 0o644))
		requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Created)
	})
	t.Run("no change is accepted", func(t *testing.T) {
		// The same setup with nothing done in the window, so the cases
		// above fail for the change and not for the flapping.
		_, _, pf := setup(t, initial)
		require.NoError(t, reacquire(pf))
	})
}

// A writer that bypasses the lock during a co-tenant's tenure is caught on
// the flapping mount, when that co-tenant writes only through Append: the
// content it predicted does not match.
func TestFenceCatchesIntrusionOnFlappingMount(t *testing.T) {
	fsys := mount(t, flapfs.Options{})
	p := filepath.Join(fsys.Dir, "session.jsonl")
	pf := openFence(t, p, "{\"turn\":0}\n")
	require.NoError(t, pf.ReleaseForPrompt())

	l := acquire(t, p, sessionlock.WithOwner("heartbeat"))
	_, err := l.Append([]byte("{\"beat\":1}\n"))
	require.NoError(t, err)
	appendBytes(t, p, "{\"bypass\":true}\n")
	_, err = l.Append([]byte("{\"beat\":2}\n"))
	require.NoError(t, err)
	require.NoError(t, l.Release())

	te := requireTakeover(t, reacquire(pf), sessionlock.CauseIntrusion, sessionlock.Rewritten)
	require.Equal(t, l.Epoch(), te.BreakGeneration)

	t.Run("in the fence's own tenure", func(t *testing.T) {
		p := filepath.Join(fsys.Dir, "own.jsonl")
		pf := openFence(t, p, "{\"turn\":0}\n")
		appendBytes(t, p, "{\"bypass\":true}\n")
		_, err := pf.Lock().Append([]byte("{\"turn\":1}\n"))
		require.NoError(t, err)
		requireTakeover(t, pf.ReleaseForPrompt(), sessionlock.CauseIntrusion, sessionlock.Rewritten)
	})
}

// modes names a fingerprint mode option for subtests.
var modes = []struct {
	name string
	mode sessionlock.FingerprintMode
}{
	{"auto", sessionlock.FingerprintAuto},
	{"stat", sessionlock.FingerprintStat},
	{"content", sessionlock.FingerprintContent},
}

// localDir returns a directory on a local, non-flapping file system.
func localDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	info, err := sessionlock.InspectFileSystem(dir)
	require.NoError(t, err)
	require.False(t, info.Remote, "the test needs a local file system for t.TempDir(), got %+v", info)
	return dir
}

// An atomic replace with identical bytes is no change to the content: the
// content fences accept it (on the flapping mount, where auto mode means
// content, and on a local disk with content forced), and stat fences on a
// local disk report it as Replaced. A replace with different bytes is a
// takeover in every mode.
func TestIdenticalReplace(t *testing.T) {
	const initial = "{\"turn\":0}\n{\"turn\":1}\n"
	fsys := mount(t, flapfs.Options{})
	caseNo := 0
	mountDir := func(t *testing.T) string {
		caseNo++
		dir := filepath.Join(fsys.Dir, fmt.Sprintf("case%d", caseNo))
		require.NoError(t, os.Mkdir(dir, 0o755))
		return dir
	}

	t.Run("identical bytes/mount/auto", func(t *testing.T) {
		p := filepath.Join(mountDir(t), "session.jsonl")
		pf := openFence(t, p, initial)
		require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
		require.NoError(t, pf.ReleaseForPrompt())
		atomicReplace(t, p, initial)
		require.NoError(t, reacquire(pf))
		require.Equal(t, uint64(1), pf.Window().Delta())
	})
	t.Run("identical bytes/local/content", func(t *testing.T) {
		p := filepath.Join(localDir(t), "session.jsonl")
		pf := openFence(t, p, initial, sessionlock.WithFingerprintMode(sessionlock.FingerprintContent))
		require.Equal(t, sessionlock.FingerprintContent, pf.FingerprintMode())
		require.NoError(t, pf.ReleaseForPrompt())
		atomicReplace(t, p, initial)
		require.NoError(t, reacquire(pf))
	})
	for _, m := range []struct {
		name string
		mode sessionlock.FingerprintMode
	}{{"stat", sessionlock.FingerprintStat}, {"auto", sessionlock.FingerprintAuto}} {
		t.Run("identical bytes/local/"+m.name, func(t *testing.T) {
			p := filepath.Join(localDir(t), "session.jsonl")
			pf := openFence(t, p, initial, sessionlock.WithFingerprintMode(m.mode))
			require.Equal(t, sessionlock.FingerprintStat, pf.FingerprintMode())
			require.NoError(t, pf.ReleaseForPrompt())
			atomicReplace(t, p, initial)
			requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Replaced)
		})
	}

	different := strings.Replace(initial, "1", "2", 1)
	for _, m := range modes {
		t.Run("different bytes/local/"+m.name, func(t *testing.T) {
			p := filepath.Join(localDir(t), "session.jsonl")
			pf := openFence(t, p, initial, sessionlock.WithFingerprintMode(m.mode))
			require.NoError(t, pf.ReleaseForPrompt())
			atomicReplace(t, p, different)
			requireTakeover(t, reacquire(pf), sessionlock.CauseBypass, sessionlock.Replaced)
		})
		t.Run("different bytes/mount/"+m.name, func(t *testing.T) {
			p := filepath.Join(mountDir(t), "session.jsonl")
			// Written without Append: in stat mode on this mount, Append's
			// own stat check would already report the flapping as an
			// intrusion (see TestStatModeOnFlappingMountIsFooled).
			pf := openFenceWriteFile(t, p, initial, sessionlock.WithFingerprintMode(m.mode))
			require.NoError(t, pf.ReleaseForPrompt())
			atomicReplace(t, p, different)
			err := reacquire(pf)
			if m.mode == sessionlock.FingerprintStat {
				// Stat mode reports any stat difference, and here there
				// is always one.
				requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Replaced)
				return
			}
			// Content mode on a flapping file system: identity is not
			// evidence, the change is named by content.
			requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Rewritten)
		})
	}
}

// mtime and ctime move with identical content (os.Chtimes on a local
// disk): content mode accepts, stat mode reports a rewrite.
func TestTimestampDriftLocal(t *testing.T) {
	const initial = "{\"turn\":0}\n"
	for _, m := range []struct {
		name string
		mode sessionlock.FingerprintMode
	}{{"content", sessionlock.FingerprintContent}, {"stat", sessionlock.FingerprintStat}} {
		t.Run(m.name, func(t *testing.T) {
			p := filepath.Join(localDir(t), "session.jsonl")
			pf := openFence(t, p, initial, sessionlock.WithFingerprintMode(m.mode))
			require.Equal(t, m.mode, pf.FingerprintMode())
			require.NoError(t, pf.ReleaseForPrompt())
			before := statT(t, p)
			drift := time.Unix(before.Mtim.Unix()).Add(-90 * time.Minute)
			require.NoError(t, os.Chtimes(p, drift, drift))
			after := statT(t, p)
			require.NotEqual(t, before.Mtim, after.Mtim)
			require.NotEqual(t, before.Ctim, after.Ctim, "chtimes moves ctime too")
			require.Equal(t, before.Ino, after.Ino)
			err := reacquire(pf)
			if m.mode == sessionlock.FingerprintContent {
				require.NoError(t, err)
			} else {
				requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Rewritten)
			}
		})
	}
}

// The control: forcing stat mode on the flapping mount reports takeovers
// where nothing happened (the failure content mode exists to avoid), while
// the same on the plain pass-through mount accepts. This shows that the
// flapping, not the mount, is what the content mode handles.
func TestStatModeOnFlappingMountIsFooled(t *testing.T) {
	stat := sessionlock.WithFingerprintMode(sessionlock.FingerprintStat)
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v/empty window", plain), func(t *testing.T) {
			fsys := mount(t, flapfs.Options{Plain: plain})
			p := filepath.Join(fsys.Dir, "session.jsonl")
			pf := openFenceWriteFile(t, p, "{\"turn\":0}\n", stat)
			require.Equal(t, sessionlock.FingerprintStat, pf.FingerprintMode())
			require.NoError(t, pf.ReleaseForPrompt())
			err := reacquire(pf)
			if plain {
				require.NoError(t, err)
				return
			}
			// Nothing happened in the window, but the inode number
			// differs from the release snapshot's.
			requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Replaced)
		})
		t.Run(fmt.Sprintf("plain=%v/own appends", plain), func(t *testing.T) {
			fsys := mount(t, flapfs.Options{Plain: plain})
			p := filepath.Join(fsys.Dir, "session.jsonl")
			pf := openFence(t, p, "{\"turn\":0}\n", stat)
			_, err := pf.Lock().Append([]byte("{\"turn\":1}\n"))
			require.NoError(t, err)
			err = pf.ReleaseForPrompt()
			if plain {
				require.NoError(t, err)
				require.NoError(t, reacquire(pf))
				return
			}
			// The tenure's own second Append sees a different inode
			// from the one its first Append left, and takes it for an
			// intruder.
			requireTakeover(t, err, sessionlock.CauseIntrusion, sessionlock.Replaced)
		})
	}
}
