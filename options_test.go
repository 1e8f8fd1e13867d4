package sessionlock_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

func TestLoggerReceivesBreaksAndIsOptional(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := sessionPath(t)

	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithLogger(logger))
	require.NoError(t, err)
	pf := sessionlock.NewPromptFence(l)
	require.NoError(t, pf.ReleaseForPrompt())
	require.NoError(t, appendLine(p, "bypass"))
	require.Error(t, pf.Reacquire(context.Background()))
	require.NoError(t, pf.Close())
	require.Contains(t, buf.String(), "chain broken")
	require.Contains(t, buf.String(), "takeover")

	// A nil logger is the same as none.
	l, err = sessionlock.AcquireSessionWriteLock(context.Background(), p, sessionlock.WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, l.Release())
}

func TestHeldTooLongIsReportedOnce(t *testing.T) {
	const limit = 20 * time.Millisecond
	reports := make(chan time.Duration, 4)
	p := sessionPath(t)
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p,
		sessionlock.WithHeldTooLong(limit, func(file string, held time.Duration) {
			reports <- held
		}))
	require.NoError(t, err)
	held := <-reports
	require.GreaterOrEqual(t, held, limit)
	require.NoError(t, l.Release())
	require.Empty(t, reports, "reported once")

	// A tenure released in time is not reported.
	quick, err := sessionlock.AcquireSessionWriteLock(context.Background(), p,
		sessionlock.WithHeldTooLong(time.Hour, func(string, time.Duration) { reports <- 0 }))
	require.NoError(t, err)
	require.NoError(t, quick.Release())
	require.Empty(t, reports)
}
