package sessionlock

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// A handle is this process's open lock file for one session, with what the
// process knows about it: the file's identity, the ledger as this process
// last read or wrote it, and the file system it lives on.
//
// Opening and closing the lock file on every tenure would cost more than
// everything else a tenure does, so while a session is in use its lock file
// stays open between tenures and is locked and unlocked with flock(2) on
// the same descriptor. The descriptor is never trusted blindly: each tenure
// compares the locked file with the one at the path (a lock file removed or
// replaced between tenures is reopened), and reads the ledger again. When
// the bytes read equal the ledger this process last wrote, the decoded
// ledger it kept is reused instead of being parsed again.
//
// An idle handle (no tenure open, nobody waiting) is closed after
// idleTimeout, and at most maxIdleHandles stay open at once, oldest closed
// first, so descriptors and memory return to where they were soon after a
// process stops using its sessions. CloseIdleLockFiles closes them at once.
// Windows keeps no idle handles (an open file there blocks removing it),
// nor do network and FUSE file systems (a fresh open is the only reliable
// identity check there).
type handle struct {
	f    *os.File  // nil when closed
	info shortStat // f as fstat saw it when opened

	// raw is the ledger (with its padding) as this process last wrote it,
	// and state is raw decoded; state is nil when they are not
	// known to match the file, and is owned by the tenure while one is
	// open.
	raw   []byte
	state *ledgerState

	fsys    FileSystem
	fsKnown bool

	idleSince time.Time
}

const (
	// idleTimeout is how long an unused lock file stays open. A session in
	// active use (a transcript being written, a heartbeat) takes its next
	// tenure well within it.
	idleTimeout = 500 * time.Millisecond
	// maxIdleHandles bounds the lock files kept open while unused.
	maxIdleHandles = 64
)

// idleQueues are the queues whose handles are open and unused, oldest
// first. Guarded by queuesMu, like idleArmed.
var (
	idleQueues []*turnQueue
	idleTimer  *time.Timer
	idleArmed  bool
)

// open opens the lock file at lockPath, creating it if missing. The caller
// holds the session's turn, and not queuesMu.
func (h *handle) open(lockPath string) error {
	if err := checkLockFile("acquire", lockPath); err != nil {
		return err
	}
	f, err := openLockFile(lockPath)
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		// Out of descriptors: the idle lock files kept open by this
		// package must not be what makes an acquire fail.
		CloseIdleLockFiles()
		f, err = openLockFile(lockPath)
	}
	if err != nil {
		return openError(lockPath, err)
	}
	st, err := fstatShort(f)
	if err != nil {
		f.Close()
		return &fs.PathError{Op: "acquire", Path: lockPath, Err: unwrapPathError(err)}
	}
	if !st.mode.IsRegular() {
		f.Close()
		return notRegularError("acquire", lockPath, st.mode)
	}
	h.close()
	h.f, h.info = f, st
	return nil
}

// close closes the lock file and forgets everything learned through it.
func (h *handle) close() {
	if h.f != nil {
		h.f.Close()
		h.f = nil
	}
	h.info = shortStat{}
	h.forget()
	h.fsKnown = false
}

// forget drops the cached ledger: the next tenure decodes what it reads.
func (h *handle) forget() {
	h.raw = h.raw[:0]
	h.state = nil
}

// cached returns the decoded ledger if raw is exactly what this process
// last wrote, and nil otherwise. Either way the cache is emptied:
// the caller owns the state until it calls remember.
func (h *handle) cached(raw []byte) *ledgerState {
	s := h.state
	h.state = nil
	if s != nil && bytes.Equal(raw, h.raw) {
		return s
	}
	return nil
}

// remember notes that the lock file's ledger is now raw, decoded as s.
func (h *handle) remember(raw []byte, s *ledgerState) {
	h.raw = append(h.raw[:0], raw...)
	h.state = s
}

// enterIdleLocked puts q's open handle on the idle list. queuesMu is held.
func enterIdleLocked(q *turnQueue) {
	q.idle = true
	q.h.idleSince = time.Now()
	idleQueues = append(idleQueues, q)
	if len(idleQueues) > maxIdleHandles {
		retireLocked(idleQueues[0])
		idleQueues = idleQueues[1:]
	}
	if !idleArmed {
		idleArmed = true
		if idleTimer == nil {
			idleTimer = time.AfterFunc(idleTimeout, sweepIdle)
		} else {
			idleTimer.Reset(idleTimeout)
		}
	}
}

// leaveIdleLocked takes q off the idle list for a new turn. queuesMu is
// held.
func leaveIdleLocked(q *turnQueue) {
	q.idle = false
	for i, x := range idleQueues {
		if x == q {
			idleQueues = append(idleQueues[:i], idleQueues[i+1:]...)
			break
		}
	}
	if len(idleQueues) == 0 {
		// Drop the backing array once the list empties, so a burst of
		// sessions leaves nothing behind.
		idleQueues = nil
	}
}

// retireLocked closes an idle queue's handle and removes the queue. The
// caller removes q from idleQueues. queuesMu is held.
func retireLocked(q *turnQueue) {
	q.idle = false
	q.h.close()
	q.h.raw = nil
	dropQueueLocked(q)
}

// sweepIdle closes the handles that have been idle for idleTimeout, and
// rearms the timer for the next one to expire.
func sweepIdle() {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	now := time.Now()
	n := 0
	for n < len(idleQueues) && now.Sub(idleQueues[n].h.idleSince) >= idleTimeout {
		retireLocked(idleQueues[n])
		n++
	}
	idleQueues = idleQueues[n:]
	if len(idleQueues) == 0 {
		idleQueues = nil
		idleArmed = false
		return
	}
	idleTimer.Reset(idleTimeout - now.Sub(idleQueues[0].h.idleSince))
}

// CloseIdleLockFiles closes the lock files that this process keeps open
// between tenures of recently used sessions. They close by themselves
// within half a second of a session's last release; call this first when
// that is too late, for example before unmounting the file system that
// holds the sessions, or to check for leaked descriptors. Locks that are
// held, and sessions that goroutines wait for, are not affected.
func CloseIdleLockFiles() {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	for _, q := range idleQueues {
		retireLocked(q)
	}
	idleQueues = nil
}
