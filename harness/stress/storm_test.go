package stress_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessionlock/sessionlock"
)

const (
	// stormWaiters goroutines wait for one lock; a quarter are cancelled
	// while it is held, another quarter while it is being handed on.
	stormWaiters = 1000
	// stormTimeout bounds the whole storm.
	stormTimeout = time.Minute
	// stormThreadSlack is how many OS threads the storm may add to the
	// process for good: waiting goroutines must not each hold a thread.
	stormThreadSlack = 8
)

// queueWatcher is a slog.Handler that passes on the owner of every
// "waiting in this process" record: the moment a waiter joined the queue.
type queueWatcher struct{ queued chan<- string }

func (w *queueWatcher) Enabled(context.Context, slog.Level) bool { return true }
func (w *queueWatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sessionlock: waiting in this process" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "owner" {
			w.queued <- a.Value.String()
			return false
		}
		return true
	})
	return nil
}
func (w *queueWatcher) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *queueWatcher) WithGroup(string) slog.Handler      { return w }

// threads returns the process's OS thread count from /proc/self/status.
func threads(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// A thousand goroutines wait for one lock; half are cancelled at random,
// some while the lock is held and some while it is being handed on. Every
// cancelled wait returns an error that wraps context.Canceled, every
// goroutine that is not cancelled gets the lock, the goroutines that got
// it got it in the order they arrived, no goroutine is left behind, and
// the process has not grown a thread per waiter.
func TestCancellationStormKeepsArrivalOrderAndLeaksNothing(t *testing.T) {
	leakOpts := goleak.IgnoreCurrent()
	baseline := threads(t)
	file := filepath.Join(t.TempDir(), "session.jsonl")
	base, cancelAll := context.WithTimeout(context.Background(), stormTimeout)
	defer cancelAll()

	holder, err := sessionlock.AcquireSessionWriteLock(base, file, sessionlock.WithOwner("holder"))
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(stormWaiters)
	whileHeld, whileHanding := perm[:stormWaiters/4], perm[stormWaiters/4:stormWaiters/2]
	never := map[int]bool{}
	for _, i := range perm[stormWaiters/2:] {
		never[i] = true
	}

	// Arrival is when a waiter joins the library's queue, which the
	// library logs at debug level; the next waiter starts only after
	// that, so the arrival order is the start order.
	queued := make(chan string, 1)
	logger := slog.New(&queueWatcher{queued: queued})

	var order []int // guarded by the session lock itself
	results := make([]error, stormWaiters)
	cancels := make([]context.CancelFunc, stormWaiters)
	done := make([]chan struct{}, stormWaiters)
	for i := range stormWaiters {
		ctx, cancel := context.WithCancel(base)
		cancels[i], done[i] = cancel, make(chan struct{})
		owner := "waiter " + strconv.Itoa(i)
		go func() {
			defer close(done[i])
			l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner(owner), sessionlock.WithLogger(logger))
			if err == nil {
				order = append(order, i)
				err = l.Release()
				if err != nil {
					err = errors.Join(errors.New("release"), err)
				}
			}
			results[i] = err
		}()
		select {
		case got := <-queued:
			require.Equal(t, owner, got, "only one waiter starts at a time")
		case <-base.Done():
			t.Fatalf("%s never joined the queue", owner)
		}
	}
	for i := range done {
		select {
		case <-done[i]:
			t.Fatalf("waiter %d returned while the lock was held: %v", i, results[i])
		default:
		}
	}

	// Wave one: cancelled while the lock is held. Each returns at once.
	for _, i := range whileHeld {
		cancels[i]()
	}
	for _, i := range whileHeld {
		select {
		case <-done[i]:
		case <-base.Done():
			t.Fatalf("cancelled waiter %d did not return", i)
		}
		require.ErrorIs(t, results[i], context.Canceled, "waiter %d", i)
		var we *sessionlock.WaitError
		require.ErrorAs(t, results[i], &we, "waiter %d", i)
		require.NotNil(t, we.Holder, "the ledger names the holder")
		require.Equal(t, "holder", we.Holder.Owner)
	}

	// Wave two: cancelled at random moments while the lock passes from
	// waiter to waiter.
	handing := make(chan struct{})
	go func() {
		defer close(handing)
		for _, i := range whileHanding {
			cancels[i]()
			time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Microsecond))))
		}
	}()
	require.NoError(t, holder.Release())
	<-handing
	for i := range done {
		select {
		case <-done[i]:
		case <-base.Done():
			t.Fatalf("waiter %d did not finish within %v", i, stormTimeout)
		}
	}

	got := 0
	for i, err := range results {
		switch {
		case never[i]:
			require.NoError(t, err, "waiter %d was never cancelled", i)
		case err != nil:
			require.ErrorIs(t, err, context.Canceled, "waiter %d", i)
		}
		if err == nil {
			got++
		}
	}
	require.Len(t, order, got)
	for k := 1; k < len(order); k++ {
		require.Less(t, order[k-1], order[k], "waiter %d got the lock before waiter %d, which arrived earlier", order[k-1], order[k])
	}

	// The queue is empty: the lock is free at once.
	ctx, cancel := context.WithTimeout(base, opTimeout)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, file)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	for _, c := range cancels {
		c()
	}

	goleak.VerifyNone(t, leakOpts)
	require.LessOrEqual(t, threads(t), baseline+stormThreadSlack, "threads before the storm: %d", baseline)
	t.Logf("%d of %d waiters got the lock in arrival order; threads %d before, %d after", got, stormWaiters, baseline, threads(t))
}
