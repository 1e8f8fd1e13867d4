package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// acquireTimeout bounds a call to acquire that a signal should end at once.
const acquireTimeout = 10 * time.Second

// acquireWithSignal runs acquire with a signal already waiting on its
// channel and returns its result.
func acquireWithSignal(t *testing.T, session string) (*sessionlock.Lock, error) {
	t.Helper()
	sigs := make(chan os.Signal, 1)
	sigs <- os.Interrupt
	type result struct {
		lock *sessionlock.Lock
		err  error
	}
	done := make(chan result, 1)
	go func() {
		l, err := acquire(session, "waiter", 0, sigs)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.lock, r.err
	case <-time.After(acquireTimeout):
		t.Fatalf("acquire ignored the signal for %v", acquireTimeout)
		return nil, nil
	}
}

func TestASignalEndsTheWaitAndTheErrorNamesTheHolder(t *testing.T) {
	t.Parallel()
	session := filepath.Join(t.TempDir(), "session.jsonl")
	held, err := sessionlock.AcquireSessionWriteLock(context.Background(), session, sessionlock.WithOwner("holder"))
	require.NoError(t, err)
	defer held.Release()

	l, err := acquireWithSignal(t, session)
	require.Nil(t, l)
	var ie *interruptedError
	require.ErrorAs(t, err, &ie)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "interrupted (interrupt) while waiting for "+held.SessionFile())
	require.Contains(t, err.Error(), `held by "holder" pid `)
}

func TestASignalAsTheLockIsTakenReleasesItUnused(t *testing.T) {
	t.Parallel()
	session := filepath.Join(t.TempDir(), "session.jsonl")

	l, err := acquireWithSignal(t, session)
	require.Nil(t, l)
	var ie *interruptedError
	require.ErrorAs(t, err, &ie)

	st, err := sessionlock.Inspect(session)
	require.NoError(t, err)
	require.False(t, st.Held)
	require.Nil(t, st.Holder, "a tenure taken as the signal came is closed again")
	require.NoFileExists(t, session)
}
