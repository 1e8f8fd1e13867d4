package sessionlock_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// shortWait bounds waits that are expected to time out.
const shortWait = 100 * time.Millisecond

// openFence acquires the lock as "controller", writes initial content when
// given, and returns a fence around it.
func openFence(t *testing.T, path, initial string) *sessionlock.PromptFence {
	t.Helper()
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner("controller"))
	require.NoError(t, err)
	if initial != "" {
		require.NoError(t, os.WriteFile(path, []byte(initial), 0o644))
	}
	pf := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = pf.Close() })
	return pf
}

// coTenant runs one tenure as owner, calling write (if not nil) under the
// lock.
func coTenant(t *testing.T, path, owner string, write func()) {
	t.Helper()
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, sessionlock.WithOwner(owner))
	require.NoError(t, err)
	if write != nil {
		write()
	}
	require.NoError(t, l.Release())
}

func mustAppend(t *testing.T, path, line string) func() {
	return func() {
		t.Helper()
		require.NoError(t, appendLine(path, line))
	}
}

// requireTakeover checks that err is a takeover with the given cause and
// change, and returns it.
func requireTakeover(t *testing.T, err error, cause sessionlock.Cause, change sessionlock.Change) *sessionlock.TakeoverError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover)
	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te)
	require.Equal(t, cause, te.Cause, "cause; error: %v", err)
	require.Equal(t, change, te.Change, "change; error: %v", err)
	return te
}

func TestFenceAcceptsUnchangedFile(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "{\"a\":1}\n")
	released := pf.Lock().Epoch()
	require.NoError(t, pf.ReleaseForPrompt())
	require.Nil(t, pf.Lock())
	require.NoError(t, pf.Reacquire(context.Background()))

	w := pf.Window()
	require.Equal(t, released, w.Released)
	require.Equal(t, uint64(1), w.Delta())
	require.Empty(t, w.Tenures)
	require.False(t, pf.TakeoverDetected())
}

func TestFenceAcceptsCoTenantAppends(t *testing.T) {
	for _, n := range []int{1, 5} {
		t.Run(fmt.Sprintf("%d co-tenants", n), func(t *testing.T) {
			p := sessionPath(t)
			pf := openFence(t, p, "{\"turn\":0}\n")
			require.NoError(t, pf.ReleaseForPrompt())
			var owners []string
			for i := 0; i < n; i++ {
				owner := fmt.Sprintf("heartbeat-%d", i)
				owners = append(owners, owner)
				coTenant(t, p, owner, mustAppend(t, p, fmt.Sprintf("{\"beat\":%d}", i)))
			}
			require.NoError(t, pf.Reacquire(context.Background()))

			w := pf.Window()
			require.Equal(t, uint64(n+1), w.Delta())
			require.Zero(t, w.Unrecorded)
			var got []string
			for _, tn := range w.Writers() {
				got = append(got, tn.Owner)
				require.Equal(t, os.Getpid(), tn.PID)
				require.True(t, tn.Wrote)
				require.Greater(t, tn.SizeAfter, tn.SizeBefore)
			}
			require.Equal(t, owners, got)
		})
	}
}

func TestFenceReportsCoTenantsThatDidNotWrite(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "x\n")
	require.NoError(t, pf.ReleaseForPrompt())
	coTenant(t, p, "reader", nil)
	coTenant(t, p, "writer", mustAppend(t, p, "y"))
	require.NoError(t, pf.Reacquire(context.Background()))
	w := pf.Window()
	require.Len(t, w.Tenures, 2)
	require.False(t, w.Tenures[0].Wrote)
	require.True(t, w.Tenures[1].Wrote)
	require.Len(t, w.Writers(), 1)
}

// bypasses are lock-bypassing changes made while no tenure is open.
var bypasses = []struct {
	name   string
	change sessionlock.Change
	// initial is the content at release; "" means the file does not exist.
	initial string
	do      func(path string) error
}{
	{"append", sessionlock.Appended, "{\"a\":1}\n", func(p string) error { return appendLine(p, "{\"bypass\":true}") }},
	{"truncate", sessionlock.Truncated, "{\"a\":1}\n", func(p string) error { return os.Truncate(p, 3) }},
	{"same-size rewrite with mtime restored", sessionlock.Rewritten, "{\"a\":1}\n", func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt([]byte("{\"a\":2}\n"), 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Chtimes(p, st.ModTime(), st.ModTime())
	}},
	{"replace by rename", sessionlock.Replaced, "{\"a\":1}\n", func(p string) error {
		if err := os.WriteFile(p+".tmp", []byte("{\"a\":1}\n{\"b\":2}\n"), 0o644); err != nil {
			return err
		}
		return os.Rename(p+".tmp", p)
	}},
	{"delete", sessionlock.Deleted, "{\"a\":1}\n", os.Remove},
	{"create", sessionlock.Created, "", func(p string) error { return os.WriteFile(p, []byte("{}\n"), 0o644) }},
}

func TestFenceDetectsBypassingChanges(t *testing.T) {
	for _, bc := range bypasses {
		t.Run(bc.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFence(t, p, bc.initial)
			require.NoError(t, pf.ReleaseForPrompt())
			require.NoError(t, bc.do(p))

			err := pf.Reacquire(context.Background())
			te := requireTakeover(t, err, sessionlock.CauseBypass, bc.change)
			require.Equal(t, te.Reacquired, te.BreakGeneration)
			require.Equal(t, bc.initial != "", te.Before.Exists)
			require.Equal(t, p, te.SessionFile)
			require.True(t, pf.TakeoverDetected())
		})
	}
}

func TestFenceDetectsBypassAroundCoTenants(t *testing.T) {
	bypass := func(p string) { require.NoError(t, appendLine(p, "{\"bypass\":1}")) }
	cases := []struct {
		name  string
		steps []string // "c" co-tenant append, "b" bypass append
	}{
		{"before", []string{"b", "c", "c"}},
		{"between", []string{"c", "b", "c"}},
		{"after", []string{"c", "c", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFence(t, p, "{\"turn\":0}\n")
			require.NoError(t, pf.ReleaseForPrompt())
			for i, s := range tc.steps {
				if s == "b" {
					bypass(p)
				} else {
					coTenant(t, p, "cron", mustAppend(t, p, fmt.Sprintf("{\"cron\":%d}", i)))
				}
			}
			requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseBypass, sessionlock.Appended)
		})
	}
}

func TestLaterFencesDoNotLaunderABreak(t *testing.T) {
	p := sessionPath(t)
	first := openFence(t, p, "{\"turn\":0}\n")
	require.NoError(t, first.ReleaseForPrompt())
	require.NoError(t, appendLine(p, "{\"bypass\":1}"))

	// A second controller runs whole windows after the bypass; its own
	// windows are clean, and it must not hide the break from the first.
	second := openFence(t, p, "")
	for i := 0; i < 3; i++ {
		require.NoError(t, second.ReleaseForPrompt())
		coTenant(t, p, "heartbeat", mustAppend(t, p, "{\"beat\":1}"))
		require.NoError(t, second.Reacquire(context.Background()))
	}
	require.NoError(t, second.Close())

	requireTakeover(t, first.Reacquire(context.Background()), sessionlock.CauseBypass, sessionlock.Appended)
}

func TestTakeoverIsStickyAndKeepsTheLock(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	require.NoError(t, pf.ReleaseForPrompt())
	require.NoError(t, appendLine(p, "b"))
	first := pf.Reacquire(context.Background())
	requireTakeover(t, first, sessionlock.CauseBypass, sessionlock.Appended)

	require.Same(t, first, pf.ReleaseForPrompt())
	require.Same(t, first, pf.Reacquire(context.Background()))
	require.True(t, pf.TakeoverDetected())
	require.NotNil(t, pf.Lock(), "after a takeover the fence holds the lock")

	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	_, err := sessionlock.AcquireSessionWriteLock(ctx, p)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, pf.Close())
	require.NoError(t, pf.Close(), "Close is always allowed")
	coTenant(t, p, "next", nil)
}

func TestNewFenceAfterABreakIsNotStalled(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	require.NoError(t, pf.ReleaseForPrompt())
	require.NoError(t, appendLine(p, "bypass"))
	require.Error(t, pf.Reacquire(context.Background()))
	require.NoError(t, pf.Close())

	// The caller reloads and starts over: windows after the break are
	// judged on their own.
	again := openFence(t, p, "")
	require.NoError(t, again.ReleaseForPrompt())
	coTenant(t, p, "heartbeat", mustAppend(t, p, "beat"))
	require.NoError(t, again.Reacquire(context.Background()))
}

func TestFenceMisuseReturnsTypedErrors(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "")
	require.ErrorIs(t, pf.Reacquire(context.Background()), sessionlock.ErrAlreadyHeld)
	require.NoError(t, pf.ReleaseForPrompt())
	require.ErrorIs(t, pf.ReleaseForPrompt(), sessionlock.ErrNotHeld)
	require.NoError(t, pf.Close())
	require.ErrorIs(t, pf.Reacquire(context.Background()), fs.ErrClosed)
	require.ErrorIs(t, pf.ReleaseForPrompt(), fs.ErrClosed)

	nilFence := sessionlock.NewPromptFence(nil)
	require.ErrorIs(t, nilFence.ReleaseForPrompt(), sessionlock.ErrNotHeld)
	require.NoError(t, nilFence.Close())

	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	require.ErrorIs(t, sessionlock.NewPromptFence(l).ReleaseForPrompt(), sessionlock.ErrNotHeld)
	require.ErrorIs(t, nilFence.Reacquire(context.Background()), sessionlock.ErrNotHeld)

	// A fence whose Lock was released directly, while another tenure holds
	// the lock: the fence must not touch that tenure's ledger.
	direct := openFence(t, p, "")
	require.NoError(t, direct.Lock().Release())
	other, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
	require.NoError(t, err)
	require.ErrorIs(t, direct.ReleaseForPrompt(), sessionlock.ErrNotHeld)
	require.NoError(t, other.Release())
	next, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
	require.NoError(t, err)
	require.Equal(t, other.Epoch()+1, next.Epoch(), "the chain went on as the other tenure left it")
	require.NoError(t, next.Release())
}

func TestReacquireTimeoutLeavesFenceReleased(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	require.NoError(t, pf.ReleaseForPrompt())
	other, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("compaction"))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	err = pf.Reacquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var we *sessionlock.WaitError
	require.ErrorAs(t, err, &we)
	require.Equal(t, "compaction", we.Holder.Owner)
	require.Equal(t, other.Epoch(), we.Generation)
	require.False(t, pf.TakeoverDetected())
	require.Nil(t, pf.Lock())

	require.NoError(t, appendLine(p, "compacted"))
	require.NoError(t, other.Release())
	require.NoError(t, pf.Reacquire(context.Background()))
	require.Equal(t, uint64(2), pf.Window().Delta())
}

// damageLedger replaces the lock file's content while nobody holds it.
func damageLedger(t *testing.T, lockPath string, damage func([]byte) []byte) {
	t.Helper()
	raw, err := os.ReadFile(lockPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(lockPath, damage(raw), 0o644))
}

func TestCorruptLedgerIsUnknownHistory(t *testing.T) {
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not a ledger\n") }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"bit flip in data", func(b []byte) []byte {
			i := strings.Index(string(b), "\nstate ") + len("\nstate ")
			b[i] ^= 0x01
			return b
		}},
		{"empty", func([]byte) []byte { return nil }},
		{"binary noise", func([]byte) []byte { return []byte{0xff, 0x00, 0xfe, '\n', 0x01} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFence(t, p, "{\"a\":1}\n")
			lockPath := pf.Lock().LockFile()
			require.NoError(t, pf.ReleaseForPrompt())
			damageLedger(t, lockPath, tc.damage)

			err := pf.Reacquire(context.Background())
			require.ErrorIs(t, err, sessionlock.ErrSessionTakeover)
			var te *sessionlock.TakeoverError
			require.ErrorAs(t, err, &te)
			require.Contains(t, []sessionlock.Cause{sessionlock.CauseUnknownHistory, sessionlock.CauseGenerationRegressed}, te.Cause)
			require.NoError(t, pf.Close())

			// The ledger was rewritten: the next window is judged normally.
			raw, err := os.ReadFile(lockPath)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(raw), "sessionlock ledger v2\n"))
			next := openFence(t, p, "")
			require.NoError(t, next.ReleaseForPrompt())
			require.NoError(t, next.Reacquire(context.Background()))
		})
	}
}

func TestDeletedLockFileIsUnknownHistory(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	lockPath := pf.Lock().LockFile()
	require.NoError(t, pf.ReleaseForPrompt())
	require.NoError(t, os.Remove(lockPath))
	err := pf.Reacquire(context.Background())
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover)
}

func TestLedgerIsReadableAndBounded(t *testing.T) {
	p := sessionPath(t)
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("controller"))
	require.NoError(t, err)
	raw, err := os.ReadFile(l.LockFile())
	require.NoError(t, err)
	require.Contains(t, string(raw), fmt.Sprintf("holder: \"controller\" pid %d on host", os.Getpid()))
	require.NoError(t, l.Release())

	long := strings.Repeat("x", 10000)
	var sizes []int64
	for i := 0; i < 200; i++ {
		coTenant(t, p, long, mustAppend(t, p, "line"))
		st, err := os.Stat(l.LockFile())
		require.NoError(t, err)
		sizes = append(sizes, st.Size())
	}
	// Once the history is full, the size varies only with the width of
	// the numbers in it.
	full := sizes[len(sizes)-100:]
	require.Less(t, slices.Max(full), int64(16<<10), "the ledger stays small")
	require.Less(t, slices.Max(full)-slices.Min(full), int64(64), "the ledger stops growing once its history is full")
}

func TestWindowCountsTenuresBeyondTheHistory(t *testing.T) {
	const coTenants = 50
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	require.NoError(t, pf.ReleaseForPrompt())
	for i := 0; i < coTenants; i++ {
		coTenant(t, p, "cron", mustAppend(t, p, "b"))
	}
	require.NoError(t, pf.Reacquire(context.Background()))
	w := pf.Window()
	require.Equal(t, uint64(coTenants+1), w.Delta())
	require.Equal(t, coTenants, len(w.Tenures)+w.Unrecorded)
	require.NotZero(t, w.Unrecorded)
}

func TestEpochGrowsByOnePerTenure(t *testing.T) {
	p := sessionPath(t)
	var last uint64
	for i := 0; i < 10; i++ {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
		require.NoError(t, err)
		if i > 0 {
			require.Equal(t, last+1, l.Epoch())
		}
		last = l.Epoch()
		require.NoError(t, l.Release())
	}
}

func TestTakeoverErrorMessageNamesTheBreak(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	require.NoError(t, pf.ReleaseForPrompt())
	require.NoError(t, os.Truncate(p, 0))
	err := pf.Reacquire(context.Background())
	te := requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Truncated)
	msg := err.Error()
	require.Contains(t, msg, p)
	require.Contains(t, msg, "truncated")
	require.Contains(t, msg, fmt.Sprintf("between generations %d and %d", te.BreakGeneration-1, te.BreakGeneration))
	require.False(t, errors.Is(err, context.Canceled))
}

func TestFenceWhoseLockFileIsReplacedReportsLockLost(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "a\n")
	lockPath := pf.Lock().LockFile()
	require.NoError(t, os.WriteFile(lockPath+".tmp", nil, 0o644))
	require.NoError(t, os.Rename(lockPath+".tmp", lockPath))

	err := pf.ReleaseForPrompt()
	requireTakeover(t, err, sessionlock.CauseLockLost, sessionlock.Created)
	require.NotNil(t, pf.Lock())
	require.ErrorIs(t, pf.Close(), sessionlock.ErrLockLost)
}
