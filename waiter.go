package sessionlock

import (
	"os"
	"time"

	"github.com/gofrs/flock"
)

// A blocked flock(2) cannot be interrupted from Go, and polling with
// non-blocking attempts adds up to the polling interval to every hand-off.
// So when the lock is held by another process, this process makes exactly
// one blocking attempt per lock path, in its own goroutine: the kernel
// waiter. The goroutine at the head of the in-process queue waits for the
// kernel waiter's result or for its context, whichever comes first. If the
// context ends first, the kernel waiter stays: the next goroutine to reach
// the head of the queue takes its result. If nobody is left to take it, the
// lock is released as soon as the kernel grants it. Blocked calls, and so
// OS threads, are bounded by the number of contended lock paths, not by the
// number of waiters, and by maxKernelWaiters: the Go runtime keeps a thread
// that has blocked in a system call for later use, so a process waiting on
// thousands of distinct contended files at once would otherwise keep
// thousands of threads. Beyond the cap, waiters poll with a non-blocking
// attempt and back off, as a blocked call would cost a thread each.

// kernelWaiter is one blocking lock attempt on a lock file.
type kernelWaiter struct {
	done chan struct{} // closed when the attempt returned
	fl   *flock.Flock  // the lock, set before done is closed
	err  error
	// orphan is set, under queuesMu, when no goroutine waits for the
	// lock any more: the waiter then releases it at once.
	orphan bool
}

// kernelWaiters holds the pending or unclaimed kernel waiter of each
// session, keyed like queues. Guarded by queuesMu.
var kernelWaiters = map[string]*kernelWaiter{}

// maxKernelWaiters bounds the blocking lock attempts in flight at once in
// this process; see the comment at the top of this file.
const maxKernelWaiters = 8

// tryLockSlots bounds how many non-blocking lock attempts (a flock, and an
// open of the lock file when the session has none open) run at once in
// this process. When thousands of
// sessions are contended at once, their attempts would otherwise pile up in
// system calls, and the Go runtime starts a thread for each call that takes
// long and keeps it afterwards.
var tryLockSlots = make(chan struct{}, 4)

// Polling bounds for waiters beyond maxKernelWaiters.
const (
	pollMin = 500 * time.Microsecond
	pollMax = 25 * time.Millisecond
)

// kernelWaiterFor returns the kernel waiter for key, starting one on
// lockPath if there is none, and marks it wanted. It returns nil when
// maxKernelWaiters are already in flight; the caller then polls. The caller
// holds the in-process turn for key.
func kernelWaiterFor(key, lockPath string) *kernelWaiter {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	if kw := kernelWaiters[key]; kw != nil {
		kw.orphan = false
		return kw
	}
	if len(kernelWaiters) >= maxKernelWaiters {
		return nil
	}
	kw := &kernelWaiter{done: make(chan struct{})}
	kernelWaiters[key] = kw
	go kw.wait(key, lockPath)
	return kw
}

// pendingKernelWaiter returns the kernel waiter for key, or nil.
func pendingKernelWaiter(key string) *kernelWaiter {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	kw := kernelWaiters[key]
	if kw != nil {
		kw.orphan = false
	}
	return kw
}

func (kw *kernelWaiter) wait(key, lockPath string) {
	fl := newFlock(lockPath)
	err := fl.Lock()

	queuesMu.Lock()
	kw.fl, kw.err = fl, err
	orphan := kw.orphan
	if orphan && kernelWaiters[key] == kw {
		delete(kernelWaiters, key)
	}
	close(kw.done)
	queuesMu.Unlock()

	if orphan && err == nil {
		_ = fl.Unlock()
	}
}

// claim takes the kernel waiter's result after done is closed.
func (kw *kernelWaiter) claim(key string) (*flock.Flock, error) {
	queuesMu.Lock()
	if kernelWaiters[key] == kw {
		delete(kernelWaiters, key)
	}
	queuesMu.Unlock()
	return kw.fl, kw.err
}

// abandonKernelWaiterLocked is called with queuesMu held when the last
// in-process waiter for key has gone: a granted lock is released, a pending
// attempt is marked to release its lock when granted.
func abandonKernelWaiterLocked(key string) {
	kw := kernelWaiters[key]
	if kw == nil {
		return
	}
	select {
	case <-kw.done:
		delete(kernelWaiters, key)
		if kw.err == nil {
			// Unlock outside the caller's critical section would be nicer,
			// but it is one non-blocking system call.
			_ = kw.fl.Unlock()
		}
	default:
		kw.orphan = true
	}
}

// newFlock prepares a lock on lockPath, created if missing, never through
// a symbolic link.
func newFlock(lockPath string) *flock.Flock {
	return flock.New(lockPath, flock.SetFlag(os.O_CREATE|os.O_RDWR|oNoFollow), flock.SetPermissions(lockFileMode))
}
