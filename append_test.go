package sessionlock_test

import (
	"context"
	"io/fs"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

func TestAppendWritesUnderTheLock(t *testing.T) {
	p := sessionPath(t)
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
	require.NoError(t, err)
	n, err := l.Append([]byte("{\"a\":1}\n"))
	require.NoError(t, err)
	require.Equal(t, 8, n)
	_, err = l.Append([]byte("{\"b\":2}\n"))
	require.NoError(t, err)
	require.NoError(t, l.Release())

	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "{\"a\":1}\n{\"b\":2}\n", string(got))

	_, err = l.Append([]byte("late\n"))
	require.ErrorIs(t, err, sessionlock.ErrNotHeld)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
}

func TestFenceAcceptsCoTenantsThatAppend(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "")
	_, err := pf.Lock().Append([]byte("{\"turn\":1}\n"))
	require.NoError(t, err)
	require.NoError(t, pf.ReleaseForPrompt())
	for i := 0; i < 3; i++ {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("heartbeat"))
		require.NoError(t, err)
		_, err = l.Append([]byte("{\"beat\":1}\n"))
		require.NoError(t, err)
		require.NoError(t, l.Release())
	}
	require.NoError(t, pf.Reacquire(context.Background()))
	require.Len(t, pf.Window().Writers(), 3)
}

func TestIntrusionDuringAnAppendingTenureIsATakeover(t *testing.T) {
	intrusions := []struct {
		name   string
		change sessionlock.Change
		// when: "between" two appends, or "after" the last one.
		when string
		do   func(p string) error
	}{
		{"append between appends", sessionlock.Appended, "between", func(p string) error { return appendLine(p, "intruder") }},
		{"append after last append", sessionlock.Appended, "after", func(p string) error { return appendLine(p, "intruder") }},
		{"truncate", sessionlock.Truncated, "after", func(p string) error { return os.Truncate(p, 1) }},
		{"replace", sessionlock.Replaced, "between", func(p string) error {
			if err := os.WriteFile(p+".tmp", []byte("x\n"), 0o644); err != nil {
				return err
			}
			return os.Rename(p+".tmp", p)
		}},
	}
	for _, in := range intrusions {
		t.Run(in.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFence(t, p, "{\"turn\":0}\n")
			require.NoError(t, pf.ReleaseForPrompt())

			l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("cron"))
			require.NoError(t, err)
			_, err = l.Append([]byte("{\"cron\":1}\n"))
			require.NoError(t, err)
			if in.when == "between" {
				require.NoError(t, in.do(p))
				_, err = l.Append([]byte("{\"cron\":2}\n"))
				require.NoError(t, err)
			} else {
				require.NoError(t, in.do(p))
			}
			require.NoError(t, l.Release())

			te := requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseIntrusion, in.change)
			require.Equal(t, l.Epoch(), te.BreakGeneration)
			require.Contains(t, te.Error(), "during generation")
		})
	}
}

func TestFileCreatedBeforeFirstAppendIsAnIntrusion(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "")
	require.NoError(t, pf.ReleaseForPrompt())
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("cron"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, []byte("someone else\n"), 0o644))
	_, err = l.Append([]byte("{\"cron\":1}\n"))
	require.NoError(t, err)
	require.NoError(t, l.Release())
	requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseIntrusion, sessionlock.Created)
}

// Without Append the lock cannot tell a holder's writes from an intruder's
// during the tenure: the change is attributed to the holder. This is the
// documented limit of a fingerprint chain.
func TestIntrusionDuringAPlainTenureIsAttributedToTheHolder(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "{\"turn\":0}\n")
	require.NoError(t, pf.ReleaseForPrompt())
	coTenant(t, p, "cron", func() {
		require.NoError(t, appendLine(p, "{\"cron\":1}"))
		require.NoError(t, appendLine(p, "intruder"))
	})
	require.NoError(t, pf.Reacquire(context.Background()))
}

func TestFenceSeesIntrusionInItsOwnTenure(t *testing.T) {
	p := sessionPath(t)
	pf := openFence(t, p, "")
	_, err := pf.Lock().Append([]byte("{\"turn\":1}\n"))
	require.NoError(t, err)
	require.NoError(t, appendLine(p, "intruder"))

	err = pf.ReleaseForPrompt()
	requireTakeover(t, err, sessionlock.CauseIntrusion, sessionlock.Appended)
	require.NotNil(t, pf.Lock(), "the fence keeps the lock after a takeover")
	require.Same(t, err, pf.Reacquire(context.Background()))
	require.NoError(t, pf.Close())
}
