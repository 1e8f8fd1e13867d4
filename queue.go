package sessionlock

import (
	"context"
	"sync"
)

// Goroutines of one process take turns on a session file through a queue
// keyed by the canonical path. Only the goroutine whose turn it is touches
// the file lock, so the kernel never sees two waiters from one process, and
// waiters are served in the order they arrived (FIFO), which bounds the
// longest wait.
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
	held    bool
	waiters []*waiter // FIFO; waiters[0] is next
}

type waiter struct {
	ready chan struct{} // closed when the turn is handed to this waiter
}

// takeTurn blocks until the caller has the turn for key or ctx ends.
func takeTurn(ctx context.Context, key string) error {
	queuesMu.Lock()
	q := queues[key]
	if q == nil {
		q = &turnQueue{}
		queues[key] = q
	}
	if !q.held {
		q.held = true
		queuesMu.Unlock()
		return nil
	}
	w := &waiter{ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	queuesMu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}

	queuesMu.Lock()
	defer queuesMu.Unlock()
	select {
	case <-w.ready:
		// The turn arrived as the context ended; take it and pass it on.
		handOffLocked(key, q)
	default:
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
	}
	return ctx.Err()
}

// giveTurn ends the caller's turn for key and hands it to the next waiter.
func giveTurn(key string) {
	queuesMu.Lock()
	handOffLocked(key, queues[key])
	queuesMu.Unlock()
}

func handOffLocked(key string, q *turnQueue) {
	if q == nil {
		return
	}
	if len(q.waiters) > 0 {
		next := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		close(next.ready)
		return
	}
	q.held = false
	delete(queues, key)
	abandonKernelWaiterLocked(key)
}
