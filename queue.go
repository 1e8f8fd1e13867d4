package sessionlock

import (
	"context"
	"log/slog"
	"sync"
)

// Goroutines of one process take turns on a session file through a queue
// keyed by the canonical path. Only the goroutine whose turn it is touches
// the file lock and the session's handle (see handle.go), so the kernel
// never sees two waiters from one process, and waiters are served in the
// order they arrived (FIFO), which bounds the longest wait.
//
// A turn passes from one goroutine to the next by closing the next waiter's
// channel while holding queuesMu; the race detector sees that hand-off as a
// synchronisation edge, so data guarded by the session lock is visibly
// ordered between goroutines.

var (
	queuesMu sync.Mutex
	queues   = map[string]*turnQueue{}
)

type turnQueue struct {
	key     string
	held    bool
	waiters []*waiter // FIFO; waiters[0] is next
	// h is the session's open lock file. It belongs to the goroutine whose
	// turn it is; between turns it may stay open, idle (see handle.go).
	h    handle
	idle bool // in idleQueues, waiting to be reused or closed
}

type waiter struct {
	ready chan struct{} // closed when the turn is handed to this waiter
}

// takeTurn blocks until the caller has the turn for key or ctx ends. It
// returns the session's queue, whose handle the caller may use until it
// gives the turn back. A caller that has to wait is logged at debug level
// once it is in the queue, with the number of waiters ahead of it.
func takeTurn(ctx context.Context, key string, o *options) (*turnQueue, error) {
	queuesMu.Lock()
	q := queues[key]
	if q == nil {
		q = &turnQueue{key: key}
		queues[key] = q
	}
	if !q.held {
		q.held = true
		if q.idle {
			leaveIdleLocked(q)
		}
		queuesMu.Unlock()
		return q, nil
	}
	w := &waiter{ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	ahead := len(q.waiters) - 1
	queuesMu.Unlock()
	if o.logger != nil {
		o.log(slog.LevelDebug, "sessionlock: waiting in this process", "session", key, "owner", o.owner, "ahead", ahead)
	}

	select {
	case <-w.ready:
		return q, nil
	case <-ctx.Done():
	}

	queuesMu.Lock()
	defer queuesMu.Unlock()
	select {
	case <-w.ready:
		// The turn arrived as the context ended; take it and pass it on.
		handOffLocked(q)
	default:
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
	}
	return nil, ctx.Err()
}

// giveTurn ends the caller's turn on q and hands it to the next waiter.
func giveTurn(q *turnQueue) {
	queuesMu.Lock()
	handOffLocked(q)
	queuesMu.Unlock()
}

// handOffLocked passes the turn on q to the next waiter. With nobody
// waiting, the session's lock file stays open for a while in case the
// session is used again soon, or the queue goes away at once if its lock
// file is closed.
func handOffLocked(q *turnQueue) {
	if len(q.waiters) > 0 {
		next := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		close(next.ready)
		return
	}
	q.held = false
	abandonKernelWaiterLocked(q.key)
	if q.h.f != nil {
		enterIdleLocked(q)
		return
	}
	dropQueueLocked(q)
}

// dropQueueLocked removes q, which nobody holds or waits for. A map keeps
// the space of its largest size, so once the last queue is gone the map is
// replaced: a burst of thousands of sessions leaves no residue.
func dropQueueLocked(q *turnQueue) {
	delete(queues, q.key)
	if len(queues) == 0 {
		queues = map[string]*turnQueue{}
	}
}
