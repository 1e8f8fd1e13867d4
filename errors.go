package sessionlock

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. File system failures are reported as *fs.PathError whose
// Err wraps one of these (or the operating system's error), so callers can
// test with errors.Is and still read which path and operation failed.
var (
	// ErrSessionTakeover reports that a prompt fence found a change to the
	// session file that no tenure accounts for. Errors that wrap it are
	// *TakeoverError values with the details.
	ErrSessionTakeover = errors.New("sessionlock: session file changed outside the lock")

	// ErrInvalidPath reports a session path that cannot be locked: empty,
	// containing a NUL byte, naming a directory, or in a directory that does
	// not exist.
	ErrInvalidPath = errors.New("sessionlock: invalid session file path")

	// ErrLockFileNotRegular reports that <session>.lock exists but is a
	// symbolic link, a directory or another non-regular file. The library
	// refuses to follow or replace it.
	ErrLockFileNotRegular = errors.New("sessionlock: lock file is not a regular file")

	// ErrLockLost reports that, while a tenure was open, the lock file was
	// removed or replaced at its path. Another process may have locked the
	// new file, so exclusion during the tenure is not guaranteed.
	ErrLockLost = errors.New("sessionlock: lock file was removed or replaced while held")

	// ErrNotHeld reports an operation that needs the lock when the caller
	// does not hold it (a released Lock, or a fence released for a prompt).
	ErrNotHeld = errors.New("sessionlock: lock not held")

	// ErrAlreadyHeld reports a Reacquire on a fence that already holds the
	// lock.
	ErrAlreadyHeld = errors.New("sessionlock: lock already held")
)

// Cause says why a prompt fence could not trust the history of its window.
type Cause int

const (
	// CauseBypass: the session file changed while nobody held the lock (or
	// was changed by a process that took the file lock without keeping the
	// ledger, such as flock(1) around a shell command).
	CauseBypass Cause = iota + 1
	// CauseHolderDied: a tenure was never closed; its holder died or lost
	// its lock while holding it, so its writes may be incomplete.
	CauseHolderDied
	// CauseUnknownHistory: the ledger was missing, empty or corrupt, so
	// nothing is known about what happened before the tenure that found it.
	CauseUnknownHistory
	// CauseGenerationRegressed: the generation did not grow across the
	// window, which means the ledger was reset or replaced.
	CauseGenerationRegressed
	// CauseLockLost: the fence found, before releasing for a prompt, that
	// its lock file had been removed or replaced during its tenure, so
	// another writer may have held a second lock on a new lock file. (A
	// co-tenant that loses its lock gets ErrLockLost from Release; fences
	// spanning its tenure see the new lock file's unknown history.)
	CauseLockLost
	// CauseIntrusion: during a tenure that wrote only through Lock.Append,
	// the session file changed in a way those appends did not make.
	CauseIntrusion
)

var causeNames = [...]string{
	CauseBypass:              "bypass",
	CauseHolderDied:          "holder-died",
	CauseUnknownHistory:      "unknown-history",
	CauseGenerationRegressed: "generation-regressed",
	CauseLockLost:            "lock-lost",
	CauseIntrusion:           "intrusion",
}

// String returns a short stable name such as "bypass" or "holder-died".
func (c Cause) String() string {
	if c > 0 && int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", int(c))
}

func parseCause(s string) Cause {
	for i, name := range causeNames {
		if name != "" && name == s {
			return Cause(i)
		}
	}
	return 0
}

// Holder identifies the process and owner of a tenure.
type Holder struct {
	Owner string // the name given with WithOwner, or "" when none was given
	PID   int
	Host  string
	// ProcessStart is when the holder's process started, as that process
	// saw it; with PID and Host it tells a recycled pid from the holder.
	ProcessStart time.Time
	// Since is when the tenure began.
	Since time.Time
}

// String describes the holder for error messages, for example
// `"cron" pid 4242 on host "gw1" since 2026-12-03T15:58:19Z`.
func (h Holder) String() string {
	var since int64
	if !h.Since.IsZero() {
		since = h.Since.UnixNano()
	}
	return string(appendHolder(nil, h.Owner, h.PID, h.Host, since))
}

// TakeoverError is the error a prompt fence returns when the session file
// changed in its window in a way no tenure accounts for. It wraps
// ErrSessionTakeover.
type TakeoverError struct {
	SessionFile string
	Cause       Cause
	// Change is what happened to the session file between the last known
	// good state and the state the breaking tenure found.
	Change Change
	// Before and After are the session file's fingerprints on either side
	// of the break, where known.
	Before, After Fingerprint
	// Released is the generation of the fence's own tenure before the
	// prompt, Reacquired the generation of the tenure that saw the
	// takeover.
	Released, Reacquired uint64
	// BreakGeneration is the tenure that found the break: the chain broke
	// between BreakGeneration-1 and BreakGeneration. For CauseIntrusion it
	// is the tenure during which the intruding change was made.
	BreakGeneration uint64
	// DeadHolder is the holder whose tenure was never closed, when Cause is
	// CauseHolderDied.
	DeadHolder *Holder
	// Detail is a human-readable explanation.
	Detail string

	// When Change is Appended, AppendedFrom and AppendedTo are the byte
	// range [AppendedFrom, AppendedTo) that was added. PrefixVerified says
	// the first AppendedFrom bytes were checked against the digest of the
	// content before the change (content mode, or a racy snapshot);
	// CompleteLines says, in addition, that the old content ended a line
	// and so does the new, so the addition is whole lines. See PureAppend.
	AppendedFrom, AppendedTo int64
	PrefixVerified           bool
	CompleteLines            bool
}

// PureAppend reports whether the change was only complete lines appended
// to content that was verified intact: a runtime may then reload just the
// bytes from AppendedFrom to AppendedTo instead of the whole file.
func (e *TakeoverError) PureAppend() bool {
	return e.Change == Appended && e.PrefixVerified && e.CompleteLines
}

// Error describes the takeover in one line.
func (e *TakeoverError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sessionlock: takeover of %s: %s", e.SessionFile, e.Cause)
	if e.Change != Unchanged && e.Change != 0 {
		fmt.Fprintf(&b, ", file %s", e.Change)
	}
	switch {
	case e.Cause == CauseIntrusion || e.Cause == CauseLockLost:
		fmt.Fprintf(&b, " during generation %d", e.BreakGeneration)
	case e.BreakGeneration > 0:
		fmt.Fprintf(&b, " between generations %d and %d", e.BreakGeneration-1, e.BreakGeneration)
	}
	if e.DeadHolder != nil {
		fmt.Fprintf(&b, " (holder %s died mid-tenure)", e.DeadHolder)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns ErrSessionTakeover.
func (e *TakeoverError) Unwrap() error { return ErrSessionTakeover }

// WaitError is returned when waiting for the lock ends because the context
// ended. It wraps the context's error and names the holder the ledger shows,
// when one could be read.
type WaitError struct {
	SessionFile string
	// Holder is the tenure holder recorded in the ledger at the time the
	// wait ended, or nil when the ledger named none (for example when the
	// lock is held by a process that does not keep the ledger).
	Holder *Holder
	// Generation is the holder's generation, when Holder is not nil.
	Generation uint64
	Err        error
}

// Error names the session, the context's error and the holder.
func (e *WaitError) Error() string {
	msg := fmt.Sprintf("sessionlock: waiting for lock on %s: %v", e.SessionFile, e.Err)
	if e.Holder != nil {
		return fmt.Sprintf("%s; held by %s (generation %d)", msg, e.Holder, e.Generation)
	}
	return msg + "; holder unknown (no open tenure in the ledger)"
}

// Unwrap returns the context's error.
func (e *WaitError) Unwrap() error { return e.Err }
