package sessionlock

import (
	"os"
	"sync/atomic"
	"time"
)

// highestGeneration is the highest generation this process has seen for any
// session file. When a ledger is lost (missing, empty or corrupt), the new
// ledger continues above it, so a generation never repeats within a process
// and a fence that spans the loss sees either a generation that did not grow
// or a break after its own. One number serves every file: generations only
// need to grow per file, and a shared bound keeps no state per session.
var highestGeneration atomic.Uint64

func noteGeneration(g uint64) {
	for {
		cur := highestGeneration.Load()
		if g <= cur || highestGeneration.CompareAndSwap(cur, g) {
			return
		}
	}
}

// self describes this process in tenure records.
var self = func() tenureRecord {
	host, _ := os.Hostname()
	return tenureRecord{PID: os.Getpid(), Host: clip(host, maxNameBytes), ProcStart: time.Now().UnixNano()}
}()

// continuity is what an acquiring tenure learned by comparing the session
// file with the ledger's reference state (step 2 of the protocol).
type continuity struct {
	// known is false when the ledger was missing, empty or corrupt.
	known bool
	// why explains an unknown history.
	why string
	// ref is the reference fingerprint (last release, or the dead holder's
	// state at acquire) and cur the state found now.
	ref, cur Fingerprint
	change   Change
	app      appendInfo
}

// begin opens a new tenure in s for holder me, given what the continuity
// check found. It records a break at the new generation when the chain is
// broken, so that any fence released at an earlier generation sees it. It
// returns the new generation.
func (s *ledgerState) begin(c continuity, me tenureRecord, now time.Time) uint64 {
	if !c.known {
		fresh := ledgerState{Generation: highestGeneration.Load(), ID: newLedgerID()}
		*s = fresh
	}
	if s.ID == "" {
		s.ID = newLedgerID()
	}
	gen := s.Generation + 1
	noteGeneration(gen)

	switch {
	case !c.known:
		s.addBreak(breakRecord{Gen: gen, Cause: CauseUnknownHistory.String(), After: recordOf(c.cur),
			At: now.UnixNano(), Detail: clip(c.why, maxDetailBytes)})
	case s.Open != nil:
		dead := *s.Open
		dead.Died = true
		dead.AcquireFP = nil
		dead.SizeOut = c.cur.Size
		dead.Wrote = c.change != Unchanged
		s.addTenure(dead)
		// A holder that died without changing the file broke nothing: the
		// window stays trusted and lists the dead tenure. If the file did
		// change, the dead holder's writes may be incomplete, and the break
		// names it.
		if c.change != Unchanged {
			s.addBreak(breakRecord{Gen: gen, Cause: CauseHolderDied.String(), Change: c.change.String(),
				Before: recordOf(c.ref), After: recordOf(c.cur), Dead: &dead, At: now.UnixNano(), Append: c.app.record(),
				Detail: "the holder died mid-tenure after changing the file"})
		}
	case c.change != Unchanged:
		s.addBreak(breakRecord{Gen: gen, Cause: CauseBypass.String(), Change: c.change.String(),
			Before: recordOf(c.ref), After: recordOf(c.cur), At: now.UnixNano(),
			Detail: "changed while no tenure was open", Append: c.app.record()})
	}

	me.Gen = gen
	me.Acquired = now.UnixNano()
	me.SizeIn = c.cur.Size
	me.AcquireFP = recordOf(c.cur)
	s.Generation = gen
	s.Open = &me
	return gen
}

// end closes the open tenure with the session file's state at release.
func (s *ledgerState) end(fp Fingerprint, wrote bool, now time.Time) {
	if s.Open == nil {
		return
	}
	t := *s.Open
	t.AcquireFP = nil
	t.Released = now.UnixNano()
	t.SizeOut = fp.Size
	t.Wrote = wrote
	s.addTenure(t)
	s.lastClosed = &t
	s.Open = nil
	s.LastRelease = recordOf(fp)
	s.LastReleaseGen = t.Gen
}

// reference returns the fingerprint that the session file should still have
// if nobody wrote outside a tenure since the ledger was last written.
func (s *ledgerState) reference() Fingerprint {
	if s.Open != nil {
		// The last holder died mid-tenure; what it found at acquire is the
		// last state known to be good.
		fp, _ := s.Open.AcquireFP.fingerprint()
		return fp
	}
	fp, _ := s.LastRelease.fingerprint()
	return fp
}

func (s *ledgerState) addTenure(t tenureRecord) {
	s.Tenures = append(s.Tenures, newTenureLine(&t))
	if n := len(s.Tenures); n > tenureHistory {
		s.Tenures = append(s.Tenures[:0], s.Tenures[n-tenureHistory:]...)
	}
}

func (s *ledgerState) addBreak(b breakRecord) {
	s.breakLines = nil
	s.Breaks = append(s.Breaks, b)
	if n := len(s.Breaks); n > breakHistory {
		s.Breaks = append(s.Breaks[:0], s.Breaks[n-breakHistory:]...)
	}
	if b.Gen > s.BreakGen {
		s.BreakGen = b.Gen
	}
}

// firstBreakAfter returns the earliest recorded break found by a tenure
// after generation g, or nil. A break whose record fell out of the bounded
// history is still known through BreakGen; the caller handles that case.
func (s *ledgerState) firstBreakAfter(g uint64) *breakRecord {
	for i := range s.Breaks {
		if s.Breaks[i].Gen > g {
			return &s.Breaks[i]
		}
	}
	return nil
}

// tenuresBetween returns the closed tenures with generations strictly
// between from and to, oldest first, and how many of them the bounded
// history no longer holds.
func (s *ledgerState) tenuresBetween(from, to uint64) (ts []Tenure, missing int) {
	for _, line := range s.Tenures {
		if line.Gen > from && line.Gen < to {
			t := line.record()
			ts = append(ts, t.export())
		}
	}
	if to > from+1 {
		missing = int(to-from-1) - len(ts)
	}
	return ts, missing
}

// Tenure is one closed period of holding the lock, as the ledger recorded
// it.
type Tenure struct {
	Holder
	Generation uint64
	Released   time.Time
	// SizeBefore and SizeAfter are the session file's size at acquire and
	// at release.
	SizeBefore, SizeAfter int64
	// Wrote says whether the session file changed during the tenure.
	Wrote bool
	// Died says the holder never released: the tenure was closed by the
	// next acquirer.
	Died bool
	// Mode is the fingerprint mode the tenure used ("stat" or "content").
	Mode string
}

func (t *tenureRecord) export() Tenure {
	out := Tenure{Holder: t.holder(), Generation: t.Gen, SizeBefore: t.SizeIn, SizeAfter: t.SizeOut, Wrote: t.Wrote, Died: t.Died, Mode: t.Mode}
	if t.Released != 0 {
		out.Released = time.Unix(0, t.Released)
	}
	return out
}
