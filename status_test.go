package sessionlock_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

func TestInspectBeforeFirstUseCreatesNothing(t *testing.T) {
	p := sessionPath(t)
	st, err := sessionlock.Inspect(p)
	require.NoError(t, err)
	require.False(t, st.LockFileExists)
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	_, err = os.Stat(p + ".lock")
	require.ErrorIs(t, err, os.ErrNotExist)
	entries, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	require.Empty(t, entries, "not even a probe file")
}

func TestInspectShowsHolderHistoryAndLastBreak(t *testing.T) {
	p := sessionPath(t)
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithOwner("controller"))
	require.NoError(t, err)

	st, err := sessionlock.Inspect(p)
	require.NoError(t, err)
	require.True(t, st.Held, "the probe sees the lock held, even from the holder's own process")
	require.NotNil(t, st.Holder)
	require.Equal(t, "controller", st.Holder.Owner)
	require.Equal(t, os.Getpid(), st.Holder.PID)
	require.True(t, st.HolderOnThisHost)
	require.True(t, st.HolderAlive)
	require.Equal(t, l.Epoch(), st.HolderGeneration)
	require.Equal(t, "stat", st.Mode)
	require.Empty(t, st.LedgerError)

	_, err = l.Append([]byte("{}\n"))
	require.NoError(t, err)
	require.NoError(t, l.Release())
	require.NoError(t, appendLine(p, "bypass"))
	coTenant(t, p, "cron", nil)

	st, err = sessionlock.Inspect(p)
	require.NoError(t, err)
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	require.Len(t, st.Tenures, 2)
	require.Equal(t, "controller", st.Tenures[0].Owner)
	require.True(t, st.Tenures[0].Wrote)
	require.Equal(t, "cron", st.Tenures[1].Owner)
	require.NotNil(t, st.LastBreak)
	require.Equal(t, sessionlock.CauseBypass, st.LastBreak.Cause)
	require.Equal(t, sessionlock.Appended, st.LastBreak.Change)
	require.Equal(t, st.Tenures[1].Generation, st.LastBreak.Generation)
}

func TestInspectReportsACorruptLedger(t *testing.T) {
	p := sessionPath(t)
	coTenant(t, p, "x", nil)
	require.NoError(t, os.WriteFile(p+".lock", []byte("garbage\n"), 0o644))
	st, err := sessionlock.Inspect(p)
	require.NoError(t, err)
	require.Contains(t, st.LedgerError, "corrupt")
	raw, err := os.ReadFile(p + ".lock")
	require.NoError(t, err)
	require.Equal(t, "garbage\n", string(raw), "Inspect writes nothing")
}

func TestInspectSeesADeadHolder(t *testing.T) {
	p := sessionPath(t)
	c := startChild(t, "hold", p, "cron")
	require.Contains(t, c.readLine(t), "held")
	require.NoError(t, c.cmd.Process.Kill())
	_ = c.cmd.Wait()

	st, err := sessionlock.Inspect(p)
	require.NoError(t, err)
	require.False(t, st.Held, "the kernel released the dead holder's lock")
	require.NotNil(t, st.Holder, "its tenure is still open in the ledger")
	require.Equal(t, "cron", st.Holder.Owner)
	require.Equal(t, c.cmd.Process.Pid, st.Holder.PID)
	require.False(t, st.HolderAlive)
}
