package sessionlock

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
)

// PromptFence is a controller's view of a session file across the prompt
// windows of a run. The controller holds the lock while it works, releases
// it for the length of a model prompt with ReleaseForPrompt, and takes it
// back with Reacquire, which says whether the controller's in-memory view
// may be trusted:
//
//   - if every change made to the session file in the window was made by a
//     holder of the lock (a co-tenant in this or another process), Reacquire
//     returns nil and Window says which tenures ran;
//   - otherwise it returns a *TakeoverError (wrapping ErrSessionTakeover)
//     that says what changed and where the chain of tenures broke.
//
// ReleaseForPrompt also reports a takeover, with CauseIntrusion or
// CauseLockLost, when the fence's own tenure was not exclusive.
//
// A takeover is sticky: once seen, ReleaseForPrompt and Reacquire return it
// again, and the fence keeps holding the lock so that the caller can reload
// the session under exclusion before it calls Close.
//
// The methods are safe for concurrent use, but a fence models one
// controller: calls from several goroutines are serialised, not merged.
type PromptFence struct {
	mu    sync.Mutex
	lock  *Lock // the current tenure, nil while released
	canon string
	opts  options

	released    bool   // ReleaseForPrompt ran and Reacquire has not
	releasedGen uint64 // generation of the tenure closed for the prompt
	releasedID  string // the ledger's ID at that release
	releasedFP  Fingerprint
	window      Window
	takeover    *TakeoverError
	closed      bool
	neverHeld   bool // made from a nil or released Lock
	mode        FingerprintMode
}

// Window describes the tenures between a ReleaseForPrompt and the
// Reacquire that accepted them.
type Window struct {
	// Released is the generation of the fence's tenure that was closed for
	// the prompt; Reacquired is the generation of the tenure that reopened
	// it. Their difference is the epoch delta: 1 means nobody else held the
	// lock in the window.
	Released, Reacquired uint64
	// Tenures are the co-tenant tenures in the window, oldest first, as far
	// as the ledger's bounded history reaches.
	Tenures []Tenure
	// Unrecorded counts tenures in the window that the history no longer
	// holds (more co-tenants than the ledger remembers).
	Unrecorded int
}

// Delta is the epoch delta of the window: Reacquired - Released.
func (w Window) Delta() uint64 { return w.Reacquired - w.Released }

// Writers returns the tenures in the window that changed the session file.
func (w Window) Writers() []Tenure {
	var out []Tenure
	for _, t := range w.Tenures {
		if t.Wrote {
			out = append(out, t)
		}
	}
	return out
}

// NewPromptFence makes a fence that takes over l: from now on the fence
// releases and reacquires the lock, and l must not be released directly
// (Close does that). The fence reacquires with the options l was acquired
// with.
//
// If l is nil or already released, the fence starts closed and its methods
// return errors wrapping ErrNotHeld.
func NewPromptFence(l *Lock) *PromptFence {
	if l == nil {
		return &PromptFence{closed: true, neverHeld: true}
	}
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	pf := &PromptFence{lock: l, canon: l.sessionFile, opts: l.opts}
	if released {
		pf.lock = nil
		pf.closed = true
		pf.neverHeld = true
	}
	return pf
}

// Lock returns the tenure the fence currently holds, or nil while the lock
// is released for a prompt. The returned Lock must not be released directly.
func (pf *PromptFence) Lock() *Lock {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.lock
}

// ReleaseForPrompt closes the fence's tenure and remembers its generation
// and the session file's fingerprint, the point from which Reacquire checks
// the chain.
//
// After a takeover it returns the takeover error again and keeps the lock.
// Calling it while the lock is already released returns an error wrapping
// ErrNotHeld.
func (pf *PromptFence) ReleaseForPrompt() error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.takeover != nil {
		return pf.takeover
	}
	if pf.closed {
		return pf.misuse("release for prompt", fs.ErrClosed)
	}
	if pf.lock == nil {
		return pf.misuse("release for prompt", ErrNotHeld)
	}

	l := pf.lock
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		// The fence's Lock was released directly, against its contract;
		// the lock file may already belong to another tenure.
		return pf.misuse("release for prompt", ErrNotHeld)
	}
	if err := l.checkStillLocked("release for prompt"); err != nil {
		after := statOrZero(pf.canon)
		if l.mode == FingerprintContent && after.Exists {
			if digested, err := withDigest(pf.canon); err == nil {
				after = digested
			}
		}
		pf.takeover = &TakeoverError{SessionFile: pf.canon, Cause: CauseLockLost, Change: describeChange(l.acquired, after, l.mode, !l.remote),
			Released: l.gen, Reacquired: l.gen, BreakGeneration: l.gen, Before: l.acquired, After: after,
			Detail: "the lock file was removed or replaced during the fence's tenure, so another process may have held a second lock"}
		return pf.takeover
	}
	fp, err := l.snapshot()
	if err == nil && l.intrusion != nil {
		pf.takeover = takeoverFromBreak(pf.canon, l.intrusion, l.gen, l.gen)
		return pf.takeover
	}

	// Release the tenure with the snapshot just taken.
	pf.lock = nil
	pf.released = true
	pf.releasedGen = l.gen
	pf.releasedID = l.state.ID
	pf.mode = l.mode
	if err != nil {
		l.releaseLocked()
		return err
	}
	err = l.close(fp)
	if last := l.state.LastRelease; last != nil {
		pf.releasedFP, _ = last.fingerprint()
	}
	l.releaseLocked()
	return err
}

// Reacquire takes a new tenure and checks the chain since ReleaseForPrompt.
// It returns nil when every change to the session file in the window was
// made inside some tenure, and a *TakeoverError otherwise: a change while
// nobody held the lock, a holder that died mid-tenure, a lost or corrupt
// ledger, or a generation that did not grow. On a takeover the fence holds
// the new tenure.
//
// If ctx ends while waiting, Reacquire returns the *WaitError, stays
// released, and may be called again.
func (pf *PromptFence) Reacquire(ctx context.Context) error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.takeover != nil {
		return pf.takeover
	}
	if pf.closed {
		return pf.misuse("reacquire", fs.ErrClosed)
	}
	if pf.lock != nil {
		return pf.misuse("reacquire", ErrAlreadyHeld)
	}
	if !pf.released {
		return pf.misuse("reacquire", ErrNotHeld)
	}

	l, err := acquire(ctx, pf.canon, pf.opts)
	if err != nil {
		return err
	}
	pf.lock = l
	pf.released = false
	pf.mode = l.mode

	if te := pf.verdict(l); te != nil {
		pf.takeover = te
		pf.opts.log(slog.LevelWarn, "sessionlock: takeover", "session", pf.canon, "cause", te.Cause.String(), "change", te.Change.String())
		return te
	}
	tenures, missing := l.state.tenuresBetween(pf.releasedGen, l.gen)
	pf.window = Window{Released: pf.releasedGen, Reacquired: l.gen, Tenures: tenures, Unrecorded: missing}
	return nil
}

// verdict decides whether the chain from the fence's release to the new
// tenure l is unbroken.
func (pf *PromptFence) verdict(l *Lock) *TakeoverError {
	s := l.state
	g0, g1 := pf.releasedGen, l.gen
	te := &TakeoverError{SessionFile: pf.canon, Released: g0, Reacquired: g1, Before: pf.releasedFP, After: l.acquired}

	if s.ID != pf.releasedID {
		// The ledger the fence released under is gone: a new one was
		// started in the window, and its generations say nothing about
		// the fence's.
		te.Cause = CauseUnknownHistory
		te.Change = describeChange(pf.releasedFP, l.acquired, l.mode, !l.remote)
		te.Detail = "the ledger was lost and started again in the window"
		for i := range s.Breaks {
			if b := &s.Breaks[i]; parseCause(b.Cause) == CauseUnknownHistory {
				te.BreakGeneration = b.Gen
				te.Detail += " (" + b.Detail + ")"
				break
			}
		}
		return te
	}
	if g1 <= g0 {
		te.Cause = CauseGenerationRegressed
		te.Change = describeChange(pf.releasedFP, l.acquired, l.mode, !l.remote)
		te.Detail = fmt.Sprintf("generation went from %d to %d: the ledger was reset or replaced", g0, g1)
		return te
	}
	if b := s.firstBreakAfter(g0); b != nil {
		return takeoverFromBreak(pf.canon, b, g0, g1)
	}
	if s.BreakGen > g0 {
		te.Cause = CauseUnknownHistory
		te.BreakGeneration = s.BreakGen
		te.Detail = "a break was recorded in the window but its record is no longer in the ledger"
		return te
	}
	return nil
}

// takeoverFromBreak turns a ledger break into the error a fence returns.
func takeoverFromBreak(sessionFile string, b *breakRecord, released, reacquired uint64) *TakeoverError {
	te := &TakeoverError{SessionFile: sessionFile, Cause: parseCause(b.Cause), Change: parseChange(b.Change),
		Released: released, Reacquired: reacquired, BreakGeneration: b.Gen, Detail: b.Detail}
	if b.Before != nil {
		te.Before, _ = b.Before.fingerprint()
	}
	if b.After != nil {
		te.After, _ = b.After.fingerprint()
	}
	if b.Dead != nil {
		h := b.Dead.holder()
		te.DeadHolder = &h
	}
	if a := b.Append; a != nil && te.Change == Appended {
		te.AppendedFrom, te.AppendedTo = a.From, a.To
		te.PrefixVerified, te.CompleteLines = a.PrefixVerified, a.CompleteLines
	}
	return te
}

// FingerprintMode returns the mode of the fence's current tenure, or of
// the last one while the lock is released for a prompt.
func (pf *PromptFence) FingerprintMode() FingerprintMode {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.lock != nil {
		return pf.lock.mode
	}
	return pf.mode
}

// Window reports the tenures of the last window that Reacquire accepted.
// Before the first accepted Reacquire it returns the zero Window.
func (pf *PromptFence) Window() Window {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	w := pf.window
	w.Tenures = append([]Tenure(nil), w.Tenures...)
	return w
}

// TakeoverDetected reports whether the fence has seen a takeover. Once
// true it stays true.
func (pf *PromptFence) TakeoverDetected() bool {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.takeover != nil
}

// Close releases whatever the fence holds and ends it. It is always
// allowed: after a takeover, while released for a prompt, or twice (later
// calls return nil).
func (pf *PromptFence) Close() error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.closed {
		return nil
	}
	pf.closed = true
	if pf.lock == nil {
		return nil
	}
	l := pf.lock
	pf.lock = nil
	return l.Release()
}

func (pf *PromptFence) misuse(op string, err error) error {
	if pf.neverHeld {
		err = ErrNotHeld
	}
	return &fs.PathError{Op: op, Path: pf.canon, Err: err}
}
