package stress

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Figures are the counts of one phase (or of a whole run).
type Figures struct {
	Phase string

	Tenures, DeadTenures, Killed int

	// Windows counts the prompt windows that reached a verdict at
	// Reacquire: Accepted plus Takeovers. TakeoversAtRelease are fences
	// whose own tenure ended in a takeover (an intrusion through its
	// appends, or a lost lock file).
	Windows, Accepted, Takeovers, TakeoversAtRelease, WindowErrors int
	TakeoversAtReleaseWithCause                                    int

	// Injections into session files, by class (see the package doc), and
	// into lock files.
	Injections, Unheld, Attributed, Ambiguous, InjectionsNoop int
	LockInjections, LockInjectionsHeld, LockInjectionsWaited  int

	// TakeoversExpected are windows that must report a takeover, and
	// TakeoversDetected those of them that did. TakeoversWithOtherCause
	// are takeovers in windows that only had attributed or ambiguous
	// injections, or a killed holder that had not written.
	TakeoversExpected, TakeoversDetected, TakeoversWithOtherCause int
	FalseTakeovers, MissedTakeovers                               int

	LinesAcked, LinesLost, LinesDuplicated, LinesUnacked, LinesInjected, LinesGarbled int
	// GarbledChecked is LinesGarbled in a phase where no line may be
	// damaged.
	GarbledChecked, OrderViolations int
	linesMissing                    int

	// Overlaps are pairs of tenures of one file that certainly held the
	// lock at once without either learning that its lock file was lost;
	// NoticedOverlaps those where one did.
	Overlaps, NoticedOverlaps int

	LockLost, LockLossUnnoticed, LockLostSpurious int

	// DeadSpanned counts (window, dead tenure) pairs; DeadReported those
	// where the accepted window listed the tenure as died, DeadUnreported
	// those where it did not.
	DeadSpanned, DeadReported, DeadUnreported, HolderDiedTakeovers int

	// LogLinesTorn are event log lines cut short by a kill.
	Errors, Hung, LogLinesTorn int
	Causes                     map[string]int

	handoff, handoffCross, killRecovery []int64

	ErrorSamples, FalseSamples, MissedSamples, OverlapSamples []string
}

// Handoff is the hand-off latency: from one tenure's release call to the
// return of the next tenure's acquire of the same file, when that acquire
// was already waiting. HandoffCrossProcess counts only hand-offs between
// processes, and KillRecovery the time from SIGKILL to a holder killed
// mid-tenure to the return of the acquire that was waiting behind it.
func (f *Figures) Handoff() Latency             { return summarize(f.handoff) }
func (f *Figures) HandoffCrossProcess() Latency { return summarize(f.handoffCross) }
func (f *Figures) KillRecovery() Latency        { return summarize(f.killRecovery) }

// Failures lists the figures that must be zero and are not.
func (f *Figures) Failures() []string {
	var out []string
	for _, r := range rows {
		if r.failing && r.get(f) != 0 {
			out = append(out, fmt.Sprintf("%s=%d", r.name, r.get(f)))
		}
	}
	return out
}

type row struct {
	name    string
	get     func(*Figures) int
	failing bool
}

var rows = []row{
	{"tenures", func(f *Figures) int { return f.Tenures }, false},
	{"windows (verdict at reacquire)", func(f *Figures) int { return f.Windows }, false},
	{"  accepted", func(f *Figures) int { return f.Accepted }, false},
	{"  takeovers", func(f *Figures) int { return f.Takeovers }, false},
	{"takeovers at release (own tenure)", func(f *Figures) int { return f.TakeoversAtRelease }, false},
	{"injections (session file)", func(f *Figures) int { return f.Injections }, false},
	{"  unheld", func(f *Figures) int { return f.Unheld }, false},
	{"  attributed (in a tenure)", func(f *Figures) int { return f.Attributed }, false},
	{"  ambiguous (guard band)", func(f *Figures) int { return f.Ambiguous }, false},
	{"  no-op", func(f *Figures) int { return f.InjectionsNoop }, false},
	{"injections (lock file)", func(f *Figures) int { return f.LockInjections }, false},
	{"  while held", func(f *Figures) int { return f.LockInjectionsHeld }, false},
	{"  while waited on", func(f *Figures) int { return f.LockInjectionsWaited }, false},
	{"takeovers expected", func(f *Figures) int { return f.TakeoversExpected }, false},
	{"takeovers detected", func(f *Figures) int { return f.TakeoversDetected }, false},
	{"takeovers with other cause", func(f *Figures) int { return f.TakeoversWithOtherCause }, false},
	{"FALSE takeovers", func(f *Figures) int { return f.FalseTakeovers }, true},
	{"MISSED takeovers", func(f *Figures) int { return f.MissedTakeovers }, true},
	{"lines acknowledged", func(f *Figures) int { return f.LinesAcked }, false},
	{"LINES LOST", func(f *Figures) int { return f.LinesLost }, true},
	{"LINES DUPLICATED", func(f *Figures) int { return f.LinesDuplicated }, true},
	{"LINES GARBLED (checked phases)", func(f *Figures) int { return f.GarbledChecked }, true},
	{"GENERATION ORDER VIOLATIONS", func(f *Figures) int { return f.OrderViolations }, true},
	{"lines unacknowledged (killed)", func(f *Figures) int { return f.LinesUnacked }, false},
	{"lines injected", func(f *Figures) int { return f.LinesInjected }, false},
	{"OVERLAPS (unnoticed)", func(f *Figures) int { return f.Overlaps }, true},
	{"overlaps noticed (lock lost)", func(f *Figures) int { return f.NoticedOverlaps }, false},
	{"lock lost at release", func(f *Figures) int { return f.LockLost }, false},
	{"LOCK LOSS UNNOTICED", func(f *Figures) int { return f.LockLossUnnoticed }, true},
	{"LOCK LOST WITHOUT CAUSE", func(f *Figures) int { return f.LockLostSpurious }, true},
	{"processes killed", func(f *Figures) int { return f.Killed }, false},
	{"tenures dead (killed mid-tenure)", func(f *Figures) int { return f.DeadTenures }, false},
	{"dead tenures spanned by windows", func(f *Figures) int { return f.DeadSpanned }, false},
	{"  listed as died in window", func(f *Figures) int { return f.DeadReported }, false},
	{"  holder-died takeovers", func(f *Figures) int { return f.HolderDiedTakeovers }, false},
	{"DEAD TENURES UNREPORTED", func(f *Figures) int { return f.DeadUnreported }, true},
	{"event log lines cut short (killed)", func(f *Figures) int { return f.LogLinesTorn }, false},
	{"ERRORS", func(f *Figures) int { return f.Errors }, true},
	{"HUNG PROCESSES", func(f *Figures) int { return f.Hung }, true},
}

// Report is the result of checking a run.
type Report struct {
	Dir    string
	Phases []Figures
	Total  Figures
}

// Failures lists the failing figures of the whole run.
func (r *Report) Failures() []string { return r.Total.Failures() }

func total(ps []Figures) Figures {
	t := Figures{Phase: "total", Causes: map[string]int{}}
	for i := range ps {
		p := &ps[i]
		t.Tenures += p.Tenures
		t.DeadTenures += p.DeadTenures
		t.Killed += p.Killed
		t.Windows += p.Windows
		t.Accepted += p.Accepted
		t.Takeovers += p.Takeovers
		t.TakeoversAtRelease += p.TakeoversAtRelease
		t.TakeoversAtReleaseWithCause += p.TakeoversAtReleaseWithCause
		t.WindowErrors += p.WindowErrors
		t.Injections += p.Injections
		t.Unheld += p.Unheld
		t.Attributed += p.Attributed
		t.Ambiguous += p.Ambiguous
		t.InjectionsNoop += p.InjectionsNoop
		t.LockInjections += p.LockInjections
		t.LockInjectionsHeld += p.LockInjectionsHeld
		t.LockInjectionsWaited += p.LockInjectionsWaited
		t.TakeoversExpected += p.TakeoversExpected
		t.TakeoversDetected += p.TakeoversDetected
		t.TakeoversWithOtherCause += p.TakeoversWithOtherCause
		t.FalseTakeovers += p.FalseTakeovers
		t.MissedTakeovers += p.MissedTakeovers
		t.LinesAcked += p.LinesAcked
		t.LinesLost += p.LinesLost
		t.LinesDuplicated += p.LinesDuplicated
		t.LinesUnacked += p.LinesUnacked
		t.LinesInjected += p.LinesInjected
		t.LinesGarbled += p.LinesGarbled
		t.GarbledChecked += p.GarbledChecked
		t.OrderViolations += p.OrderViolations
		t.Overlaps += p.Overlaps
		t.NoticedOverlaps += p.NoticedOverlaps
		t.LockLost += p.LockLost
		t.LockLossUnnoticed += p.LockLossUnnoticed
		t.LockLostSpurious += p.LockLostSpurious
		t.DeadSpanned += p.DeadSpanned
		t.DeadReported += p.DeadReported
		t.DeadUnreported += p.DeadUnreported
		t.HolderDiedTakeovers += p.HolderDiedTakeovers
		t.Errors += p.Errors
		t.Hung += p.Hung
		t.LogLinesTorn += p.LogLinesTorn
		for k, v := range p.Causes {
			t.Causes[k] += v
		}
		t.handoff = append(t.handoff, p.handoff...)
		t.handoffCross = append(t.handoffCross, p.handoffCross...)
		t.killRecovery = append(t.killRecovery, p.killRecovery...)
		t.ErrorSamples = append(t.ErrorSamples, p.ErrorSamples...)
		t.FalseSamples = append(t.FalseSamples, p.FalseSamples...)
		t.MissedSamples = append(t.MissedSamples, p.MissedSamples...)
		t.OverlapSamples = append(t.OverlapSamples, p.OverlapSamples...)
	}
	return t
}

// Print writes the figures as a table, one column per phase, followed by
// the latencies, the takeover causes and samples of whatever failed.
// Figures in capitals must be zero.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := append(slices.Clone(r.Phases), r.Total)
	fmt.Fprint(tw, "\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.Phase)
	}
	fmt.Fprintln(tw)
	for _, rw := range rows {
		fmt.Fprintf(tw, "%s\t", rw.name)
		for i := range cols {
			fmt.Fprintf(tw, "%d\t", rw.get(&cols[i]))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()

	t := &r.Total
	fmt.Fprintf(w, "\ntakeovers detected / expected: %d / %d\n", t.TakeoversDetected, t.TakeoversExpected)
	fmt.Fprintf(w, "takeover causes: %s\n", formatCounts(t.Causes))
	for i := range cols {
		c := &cols[i]
		fmt.Fprintf(w, "hand-off latency %-11s all: %s\n", c.Phase+",", c.Handoff())
		fmt.Fprintf(w, "hand-off latency %-11s cross-process: %s\n", c.Phase+",", c.HandoffCrossProcess())
	}
	if t.Killed > 0 {
		fmt.Fprintf(w, "next acquire after a kill: %s\n", t.KillRecovery())
	}
	for _, s := range []struct {
		name string
		list []string
	}{{"errors", t.ErrorSamples}, {"false takeovers", t.FalseSamples}, {"missed takeovers", t.MissedSamples}, {"overlaps", t.OverlapSamples}} {
		for _, line := range s.list {
			fmt.Fprintf(w, "%s: %s\n", s.name, line)
		}
	}
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(w, "FAIL: %s\n", strings.Join(f, ", "))
	} else {
		fmt.Fprintln(w, "PASS: every failure count is zero")
	}
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
