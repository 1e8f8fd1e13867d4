package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Check reads a run from dir (run.json, the event logs and the session
// files) and computes its figures. It can be pointed at a run kept with
// Config.Keep.
func Check(dir string) (*Report, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return nil, err
	}
	var rec runRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("run.json: %w", err)
	}
	rep := &Report{Dir: dir}
	for _, pr := range rec.Phases {
		f, err := checkPhase(pr, int64(rec.Guard))
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", pr.Name, err)
		}
		rep.Phases = append(rep.Phases, *f)
	}
	rep.Total = total(rep.Phases)
	return rep, nil
}

// tenure is one tenure as the logs tell it, with bounds on when it really
// began and ended: it certainly held the lock from startHi to endLo, and
// it held it at most from startLo to endHi.
type tenure struct {
	worker, proc, session string
	n                     int
	gen                   uint64
	acqCall, acqRet       int64
	relCall, relRet       int64
	releasing, released   bool
	lost                  bool
	relErr                string
	acked                 int
	// dead: the process was killed before it called Release, so the
	// tenure ended with the process. unsure: it was killed while
	// releasing, so the ledger may or may not show the tenure closed.
	dead, unsure bool
	kill         *Event

	startLo, startHi, endLo, endHi int64
}

// certainlyHolds reports whether the tenure held the lock throughout
// [a, b].
func (t *tenure) certainlyHolds(a, b int64) bool { return t.startHi <= a && b <= t.endLo }

// mayTouch reports whether the tenure may have held the lock at some time
// in [a, b].
func (t *tenure) mayTouch(a, b int64) bool { return a <= t.endHi && t.startLo <= b }

// injection is one change the injector made.
type injection struct {
	Event
	lock bool
	// class is one of the classes below; for lock-file injections it is
	// classLock.
	class string
}

const (
	classUnheld     = "unheld"     // made while no tenure could have held the lock
	classAttributed = "attributed" // made inside a tenure: that holder's, by design
	classAmbiguous  = "ambiguous"  // too close to a tenure boundary to tell
	classLock       = "lock"
)

// phaseLogs is everything the logs of one phase say.
type phaseLogs struct {
	tenures    map[string]*tenure // by worker#n
	bySession  map[string][]*tenure
	windows    []Event
	injections []*injection
	kills      map[string]*Event // by process
	acked      map[lineKey]string
	errors     []string
	torn       int
}

type lineKey struct {
	worker string
	seq    int
}

func tenureKey(worker string, n int) string { return fmt.Sprintf("%s#%d", worker, n) }

func procOf(worker string) string {
	p, _, _ := strings.Cut(worker, ".")
	return p
}

func readPhase(pr phaseRecord) (*phaseLogs, error) {
	pl := &phaseLogs{tenures: map[string]*tenure{}, bySession: map[string][]*tenure{},
		kills: map[string]*Event{}, acked: map[lineKey]string{}}
	for _, path := range pr.Logs {
		events, torn, err := readLog(path)
		if err != nil {
			return nil, err
		}
		pl.torn += torn
		for i := range events {
			e := &events[i]
			t := pl.tenures[tenureKey(e.Worker, e.Tenure)]
			switch e.Kind {
			case evAcquired:
				t = &tenure{worker: e.Worker, proc: procOf(e.Worker), session: e.Session, n: e.Tenure, gen: e.Gen,
					acqCall: e.T0, acqRet: e.T1}
				pl.tenures[tenureKey(e.Worker, e.Tenure)] = t
				pl.bySession[e.Session] = append(pl.bySession[e.Session], t)
			case evAck:
				pl.acked[lineKey{e.Worker, e.Seq}] = e.Session
				if t != nil {
					t.acked++
				}
			case evReleasing:
				if t != nil {
					t.releasing, t.relCall = true, e.T0
				}
			case evReleased:
				if t != nil {
					t.released, t.relCall, t.relRet, t.lost, t.relErr = true, e.T0, e.T1, e.Lost, e.Err
				}
			case evWindow:
				pl.windows = append(pl.windows, *e)
			case evInject:
				pl.injections = append(pl.injections, &injection{Event: *e, lock: isLockOp(e.Inject.Op)})
			case evKill:
				pl.kills[e.Worker] = e
			case evError:
				pl.errors = append(pl.errors, fmt.Sprintf("%s %s: %s", e.Worker, e.Session, e.Err))
			}
			if e.Kind != evAcquired && e.Tenure != 0 && t == nil && e.Kind != evWindow {
				pl.errors = append(pl.errors, fmt.Sprintf("%s: %s event for unknown tenure %d", path, e.Kind, e.Tenure))
			}
		}
	}
	for _, f := range pr.Failed {
		pl.errors = append(pl.errors, "worker process failed: "+f)
	}
	for _, h := range pr.Hung {
		pl.errors = append(pl.errors, "worker process did not stop and was killed: "+h)
	}
	return pl, nil
}

// bound sets each tenure's time bounds. With tighten, it uses mutual
// exclusion: a tenure cannot have begun before the tenures acquired ahead
// of it ended, nor ended after the next one was acquired. The lockfile
// phase breaks exclusion on purpose, so its bounds are not tightened.
func (pl *phaseLogs) bound(tighten bool) {
	for _, t := range pl.tenures {
		t.startLo, t.startHi = t.acqCall, t.acqRet
		k := pl.kills[t.proc]
		switch {
		case t.released:
			t.endLo, t.endHi = t.relCall, t.relRet
		case k != nil && t.releasing:
			t.unsure, t.kill = true, k
			t.endLo, t.endHi = t.relCall, k.T1
		case k != nil:
			t.dead, t.kill = true, k
			t.endLo, t.endHi = max(k.T0, t.acqRet), k.T1
		default:
			pl.errors = append(pl.errors, fmt.Sprintf("tenure %s of %s was never released by a live process", tenureKey(t.worker, t.n), t.session))
			t.dead = true
			t.endLo, t.endHi = t.acqRet, math.MaxInt64
		}
	}
	for _, ts := range pl.bySession {
		slices.SortFunc(ts, func(a, b *tenure) int { return cmpInt64(a.startHi, b.startHi) })
		if !tighten {
			continue
		}
		ended := int64(math.MinInt64)
		for i, t := range ts {
			t.startLo = max(t.startLo, ended)
			ended = max(ended, t.endLo)
			if i+1 < len(ts) {
				t.endHi = min(t.endHi, ts[i+1].startHi)
			}
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// classify sorts every session file injection into unheld, attributed or
// ambiguous. An injection that failed may or may not have changed the file,
// so it is never unheld.
func (pl *phaseLogs) classify(guard int64) {
	for _, in := range pl.injections {
		if in.lock {
			in.class = classLock
			continue
		}
		a, b := in.T0-guard, in.T1+guard
		in.class = classUnheld
		for _, t := range pl.bySession[in.Session] {
			if t.certainlyHolds(a, b) {
				in.class = classAttributed
				break
			}
			if t.mayTouch(a, b) {
				in.class = classAmbiguous
			}
		}
		if in.class == classUnheld && in.Err != "" {
			in.class = classAmbiguous
		}
	}
}

func checkPhase(pr phaseRecord, guard int64) (*Figures, error) {
	ph := phases[pr.Name]
	lockPhase := slices.ContainsFunc(ph.inject, isLockOp)
	pl, err := readPhase(pr)
	if err != nil {
		return nil, err
	}
	pl.bound(!lockPhase)
	pl.classify(guard)

	f := &Figures{Phase: pr.Name, Causes: map[string]int{}}
	f.Killed = len(pl.kills)
	f.Hung = len(pr.Hung)
	f.LogLinesTorn = pl.torn
	for _, t := range pl.tenures {
		f.Tenures++
		if t.dead {
			f.DeadTenures++
		}
		if t.lost {
			f.LockLost++
		}
	}
	for _, in := range pl.injections {
		switch {
		case in.Inject.Noop:
			f.InjectionsNoop++
		case in.lock:
			f.LockInjections++
		default:
			f.Injections++
			switch in.class {
			case classUnheld:
				f.Unheld++
			case classAttributed:
				f.Attributed++
			case classAmbiguous:
				f.Ambiguous++
			}
		}
	}

	pl.checkExclusion(f)
	pl.checkLockLoss(f, guard)
	pl.checkWindows(f, guard)
	if err := pl.checkLines(f, pr, ph); err != nil {
		return nil, err
	}
	pl.handoffs(f)

	f.Errors = len(pl.errors)
	f.ErrorSamples = pl.errors[:min(len(pl.errors), 5)]
	return f, nil
}

// checkExclusion counts pairs of tenures of one session file that certainly
// held the lock at the same time. A pair in which one tenure learned that
// its lock file was removed or replaced is a noticed overlap; any other is
// a failure.
func (pl *phaseLogs) checkExclusion(f *Figures) {
	for _, ts := range pl.bySession {
		var active []*tenure
		for _, t := range ts {
			kept := active[:0]
			for _, a := range active {
				if a.endLo <= t.startHi {
					continue
				}
				kept = append(kept, a)
				if a.lost || t.lost {
					f.NoticedOverlaps++
				} else {
					f.Overlaps++
					if len(f.OverlapSamples) < 5 {
						f.OverlapSamples = append(f.OverlapSamples, fmt.Sprintf("%s: %s gen %d [%d, %d] and %s gen %d [%d, %d]",
							t.session, tenureKey(a.worker, a.n), a.gen, a.startHi, a.endLo, tenureKey(t.worker, t.n), t.gen, t.startHi, t.endLo))
					}
				}
			}
			active = append(kept, t)
		}
	}
}

// checkLockLoss requires every tenure during which a lock file was removed
// or replaced to notice it at release, and every tenure that reported a
// lost lock to have had a reason.
func (pl *phaseLogs) checkLockLoss(f *Figures, guard int64) {
	for _, in := range pl.injections {
		if !in.lock || in.Inject.Noop {
			continue
		}
		a, b := in.T0-guard, in.T1+guard
		waited := false
		for _, t := range pl.bySession[in.Session] {
			if t.certainlyHolds(a, b) && !t.dead && !t.unsure {
				f.LockInjectionsHeld++
				if !t.lost {
					f.LockLossUnnoticed++
				}
			}
			if t.acqCall < a && t.acqRet > b {
				waited = true
			}
		}
		if waited {
			f.LockInjectionsWaited++
		}
	}
	for _, t := range pl.tenures {
		if !t.lost {
			continue
		}
		reason := false
		for _, in := range pl.injections {
			if in.lock && !in.Inject.Noop && in.Session == t.session && in.T0-guard <= t.relRet && t.acqCall <= in.T1+guard {
				reason = true
				break
			}
		}
		if !reason {
			f.LockLostSpurious++
		}
	}
}

// checkWindows judges every prompt window's verdict against what happened
// in it.
func (pl *phaseLogs) checkWindows(f *Figures, guard int64) {
	for i := range pl.windows {
		e := &pl.windows[i]
		w := e.Window
		r := pl.tenures[tenureKey(e.Worker, w.ReleasedTenure)]
		if r == nil {
			pl.errors = append(pl.errors, fmt.Sprintf("window of %s names unknown tenure %d", e.Worker, w.ReleasedTenure))
			continue
		}
		if w.Cause != "" {
			f.Causes[w.Cause]++
		}
		switch w.Verdict {
		case VerdictError:
			f.WindowErrors++
			continue
		case VerdictTakeoverAtRelease:
			// The fence's own tenure was not exclusive: an intrusion seen
			// through its appends, or its lock file was lost. Either needs an
			// injection during that tenure.
			f.TakeoversAtRelease++
			if pl.injectedDuring(e.Session, r.acqCall-guard, w.RelRet+guard) {
				f.TakeoversAtReleaseWithCause++
			} else {
				f.FalseTakeovers++
				f.noteFalse(e)
			}
			continue
		}
		f.Windows++
		q := pl.tenures[tenureKey(e.Worker, w.ReacquiredTenure)]
		if q == nil {
			pl.errors = append(pl.errors, fmt.Sprintf("window of %s names unknown tenure %d", e.Worker, w.ReacquiredTenure))
			continue
		}

		// Expected: a change that certainly fell between the fence's
		// release and its reacquire while nobody held the lock, a lock file
		// lost in that time, or a holder that died there after writing.
		expected := false
		for _, in := range pl.injections {
			if in.Session != e.Session || in.Inject.Noop || (in.class != classUnheld && in.class != classLock) {
				continue
			}
			if in.T0-guard > r.endHi && in.T1+guard < q.startLo {
				expected = true
			}
		}
		var dead []*tenure
		for _, d := range pl.bySession[e.Session] {
			if d.dead && r.startHi < d.startHi && d.startHi < q.startHi && w.Released < d.gen && d.gen < w.Reacquired {
				dead = append(dead, d)
				if d.acked > 0 {
					expected = true
				}
			}
		}
		cause := expected || pl.injectedDuring(e.Session, w.RelCall-guard, w.ReacqRet+guard) ||
			pl.killedDuring(w.RelCall-guard, w.ReacqRet+guard) || pl.failedReleaseDuring(e.Session, w.RelCall, w.ReacqRet)

		if expected {
			f.TakeoversExpected++
		}
		switch w.Verdict {
		case VerdictTakeover:
			f.Takeovers++
			switch {
			case expected:
				f.TakeoversDetected++
			case cause:
				f.TakeoversWithOtherCause++
			default:
				f.FalseTakeovers++
				f.noteFalse(e)
			}
			if w.Cause == "holder-died" {
				f.HolderDiedTakeovers++
			}
		case VerdictAccepted:
			f.Accepted++
			if expected {
				f.MissedTakeovers++
				if len(f.MissedSamples) < 5 {
					f.MissedSamples = append(f.MissedSamples, fmt.Sprintf("%s %s: window g%d..g%d [%d, %d] accepted",
						e.Worker, e.Session, w.Released, w.Reacquired, w.RelCall, w.ReacqRet))
				}
			}
		}

		// A fence that spans a holder that died must say so: as a takeover
		// (above) if it had written, or with the dead tenure in its window.
		for _, d := range dead {
			f.DeadSpanned++
			if w.Verdict != VerdictAccepted {
				continue
			}
			i := slices.IndexFunc(w.Tenures, func(t WindowTenure) bool { return t.Gen == d.gen })
			switch {
			case i >= 0 && w.Tenures[i].Died:
				f.DeadReported++
			case i >= 0 || w.Unrecorded == 0:
				f.DeadUnreported++
			}
		}
	}
}

func (f *Figures) noteFalse(e *Event) {
	if len(f.FalseSamples) < 5 {
		w := e.Window
		f.FalseSamples = append(f.FalseSamples, fmt.Sprintf("%s %s: %s %s/%s g%d..g%d [%d, %d]",
			e.Worker, e.Session, w.Verdict, w.Cause, w.Change, w.Released, w.Reacquired, w.RelCall, w.ReacqRet))
	}
}

// injectedDuring reports whether an injection into session (or its lock
// file) may have happened within [a, b].
func (pl *phaseLogs) injectedDuring(session string, a, b int64) bool {
	for _, in := range pl.injections {
		if in.Session == session && !in.Inject.Noop && in.T0 <= b && a <= in.T1 {
			return true
		}
	}
	return false
}

// killedDuring reports whether the harness killed a process within [a, b].
func (pl *phaseLogs) killedDuring(a, b int64) bool {
	for _, k := range pl.kills {
		if k.T0 <= b && a <= k.T1 {
			return true
		}
	}
	return false
}

// failedReleaseDuring reports whether a release of session failed within
// [a, b]: the library then leaves the tenure open, and the next acquirer
// treats its holder as dead.
func (pl *phaseLogs) failedReleaseDuring(session string, a, b int64) bool {
	for _, t := range pl.bySession[session] {
		if t.relErr != "" && t.relCall <= b && a <= t.relRet {
			return true
		}
	}
	return false
}

// checkLines reads the session files and compares them with the
// acknowledged appends.
func (pl *phaseLogs) checkLines(f *Figures, pr phaseRecord, ph phase) error {
	present := map[lineKey]int{}
	where := map[lineKey]string{}
	for _, s := range pr.Sessions {
		content, err := os.ReadFile(filepath.Join(pr.Dir, s))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		var lastGen uint64
		lines := bytes.Split(content, []byte("\n"))
		for i, line := range lines {
			if len(line) == 0 {
				continue
			}
			if i == len(lines)-1 {
				// Not ended by a newline: cut short.
				f.LinesGarbled++
				continue
			}
			var l struct {
				Worker string  `json:"w"`
				Seq    int     `json:"seq"`
				Gen    uint64  `json:"gen"`
				Inject *uint64 `json:"inject"`
			}
			switch {
			case json.Unmarshal(line, &l) != nil:
				f.LinesGarbled++
			case l.Inject != nil:
				f.LinesInjected++
			case l.Worker != "" && l.Seq > 0:
				k := lineKey{l.Worker, l.Seq}
				present[k]++
				where[k] = s
				if l.Gen < lastGen {
					f.OrderViolations++
				}
				lastGen = max(lastGen, l.Gen)
			default:
				f.LinesGarbled++
			}
		}
	}
	for k, s := range pl.acked {
		f.LinesAcked++
		if present[k] == 0 || where[k] != s {
			f.linesMissing++
		}
	}
	for k, n := range present {
		if n > 1 {
			f.LinesDuplicated += n - 1
		}
		if _, ok := pl.acked[k]; !ok {
			f.LinesUnacked++
		}
	}
	if ph.checkLoss {
		f.LinesLost = f.linesMissing
		f.GarbledChecked = f.LinesGarbled
	}
	if !ph.checkOrder {
		f.OrderViolations = 0
	}
	return nil
}

// handoffs measures, for each tenure whose successor was already waiting
// when it began to release, the time from the release call to the
// successor's acquire returning; and for each holder killed mid-tenure
// with a waiter behind it, the time from SIGKILL to the waiter's acquire
// returning.
func (pl *phaseLogs) handoffs(f *Figures) {
	for _, ts := range pl.bySession {
		for i := 0; i+1 < len(ts); i++ {
			a, b := ts[i], ts[i+1]
			switch {
			case a.released && b.acqCall <= a.relCall:
				if d := b.acqRet - a.relCall; d >= 0 {
					f.handoff = append(f.handoff, d)
					if a.proc != b.proc {
						f.handoffCross = append(f.handoffCross, d)
					}
				}
			case a.dead && b.acqCall <= a.kill.T1:
				f.killRecovery = append(f.killRecovery, b.acqRet-a.kill.T0)
			}
		}
	}
}

// Latency summarises a set of durations.
type Latency struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

func summarize(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return time.Duration(s[max(0, min(i, len(s)-1))])
	}
	return Latency{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: time.Duration(s[len(s)-1])}
}

func (l Latency) String() string {
	if l.N == 0 {
		return "none measured"
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (n=%d)", r(l.P50), r(l.P90), r(l.P99), r(l.Max), l.N)
}
