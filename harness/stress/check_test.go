package stress_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock/harness/stress"
)

// The checker is what turns logs into a verdict on the library, so it is
// tested on its own with hand-written logs: each case is a short history of
// one session file, on a time line in milliseconds, and the figures the
// checker must draw from it. The guard band is checkGuard.

const (
	checkGuard   = 2 * time.Millisecond
	checkSession = "s.jsonl"
	// checkBase keeps every time positive and far from zero.
	checkBase = int64(time.Hour)
)

func ms(x float64) int64 { return checkBase + int64(x*float64(time.Millisecond)) }

// tenure is the three events of one released tenure.
func tenure(worker string, n int, gen uint64, acq0, acq1, rel0, rel1 float64) []stress.Event {
	return []stress.Event{
		{Kind: "acquired", Worker: worker, Tenure: n, Session: checkSession, Gen: gen, T0: ms(acq0), T1: ms(acq1)},
		{Kind: "releasing", Worker: worker, Tenure: n, Session: checkSession, T0: ms(rel0)},
		{Kind: "released", Worker: worker, Tenure: n, Session: checkSession, T0: ms(rel0), T1: ms(rel1)},
	}
}

func lostTenure(worker string, n int, gen uint64, acq0, acq1, rel0, rel1 float64) []stress.Event {
	ev := tenure(worker, n, gen, acq0, acq1, rel0, rel1)
	ev[2].Lost, ev[2].Err = true, "lock lost"
	return ev
}

func ack(worker string, n, seq int) stress.Event {
	return stress.Event{Kind: "ack", Worker: worker, Tenure: n, Session: checkSession, Seq: seq}
}

// window is a fence window of worker: tenure rt (generation g0) released
// over [r0, r1], tenure rt+1 (generation g1) reacquired over [a0, a1].
func window(worker string, rt int, g0, g1 uint64, r0, r1, a0, a1 float64, verdict, cause string, tenures ...stress.WindowTenure) stress.Event {
	return stress.Event{Kind: "window", Worker: worker, Session: checkSession, Window: &stress.WindowRecord{
		ReleasedTenure: rt, Released: g0, RelCall: ms(r0), RelRet: ms(r1),
		ReacquiredTenure: rt + 1, Reacquired: g1, ReacqCall: ms(a0), ReacqRet: ms(a1),
		Verdict: verdict, Cause: cause, Tenures: tenures}}
}

func inject(op string, t0, t1 float64) stress.Event {
	return stress.Event{Kind: "inject", Worker: "inj", Session: checkSession, T0: ms(t0), T1: ms(t1), Inject: &stress.InjectRecord{Op: op}}
}

func kill(proc string, t0, t1 float64) stress.Event {
	return stress.Event{Kind: "kill", Worker: proc, PID: 4242, T0: ms(t0), T1: ms(t1)}
}

func events(parts ...any) []stress.Event {
	var out []stress.Event
	for _, p := range parts {
		switch v := p.(type) {
		case stress.Event:
			out = append(out, v)
		case []stress.Event:
			out = append(out, v...)
		}
	}
	return out
}

// fenceAround is the usual frame of a case: controller c.0 holds tenure 1
// (generation 10) from 0 to 10 ms, releases it for a prompt, and
// reacquires at 100 ms as tenure 2.
func fenceAround(g1 uint64, verdict, cause string, tenures ...stress.WindowTenure) []stress.Event {
	return events(
		tenure("c.0", 1, 10, 0, 1, 10, 11),
		window("c.0", 1, 10, g1, 10, 11, 99, 100, verdict, cause, tenures...),
		tenure("c.0", 2, g1, 99, 100, 110, 111),
	)
}

// checkLog writes a one-phase run with the given events and session file
// content, checks it and returns the phase's figures.
func checkLog(t *testing.T, phase string, content string, evs []stress.Event) stress.Figures {
	t.Helper()
	dir := t.TempDir()
	sessions := filepath.Join(dir, phase)
	require.NoError(t, os.Mkdir(sessions, 0o755))
	if content != "" {
		require.NoError(t, os.WriteFile(filepath.Join(sessions, checkSession), []byte(content), 0o644))
	}
	logs := map[string][]string{}
	for _, e := range evs {
		proc, _, _ := strings.Cut(e.Worker, ".")
		if e.Kind == "kill" {
			proc = "harness"
		}
		b, err := json.Marshal(e)
		require.NoError(t, err)
		logs[proc] = append(logs[proc], string(b))
	}
	var paths []string
	for proc, lines := range logs {
		p := filepath.Join(dir, proc+".jsonl")
		require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
		paths = append(paths, p)
	}
	run := map[string]any{
		"guard":  checkGuard,
		"phases": []any{map[string]any{"name": phase, "dir": sessions, "sessions": []string{checkSession}, "logs": paths}},
	}
	raw, err := json.Marshal(run)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "run.json"), raw, 0o644))
	rep, err := stress.Check(dir)
	require.NoError(t, err)
	require.Len(t, rep.Phases, 1)
	return rep.Phases[0]
}

func TestCheckerClassifiesInjectionsAgainstWindows(t *testing.T) {
	tests := []struct {
		name   string
		events []stress.Event
		// The figures that must come out; others are not looked at.
		unheld, attributed, ambiguous    int
		expected, detected, other        int
		falseTakeovers, missedTakeovers  int
		takeoversAtRelease, withoutCause int
	}{
		{
			name:   "a change while nobody held the lock, accepted, is a missed takeover",
			events: events(fenceAround(11, stress.VerdictAccepted, ""), inject("append", 50, 50.1)),
			unheld: 1, expected: 1, missedTakeovers: 1,
		},
		{
			name:   "a change while nobody held the lock, reported, is a detected takeover",
			events: events(fenceAround(11, stress.VerdictTakeover, "bypass"), inject("append", 50, 50.1)),
			unheld: 1, expected: 1, detected: 1,
		},
		{
			name: "a change inside a co-tenant's tenure is attributed and needs no takeover",
			events: events(fenceAround(12, stress.VerdictAccepted, "", stress.WindowTenure{Gen: 11, PID: 1, Wrote: true}),
				tenure("a.0", 1, 11, 30, 31, 70, 71), inject("append", 50, 50.1)),
			attributed: 1,
		},
		{
			name: "a takeover caused by an attributed change is not false",
			events: events(fenceAround(12, stress.VerdictTakeover, "intrusion"),
				tenure("a.0", 1, 11, 30, 31, 70, 71), inject("append", 50, 50.1)),
			attributed: 1, other: 1,
		},
		{
			name: "a change within the guard band after a co-tenant's release is ambiguous",
			events: events(fenceAround(12, stress.VerdictAccepted, ""),
				tenure("a.0", 1, 11, 30, 31, 49, 49.5), inject("append", 50.5, 50.6)),
			ambiguous: 1,
		},
		{
			name: "a change while a co-tenant's acquire was under way is ambiguous",
			events: events(fenceAround(12, stress.VerdictAccepted, ""),
				tenure("a.0", 1, 11, 40, 60, 70, 71), inject("append", 50, 50.1)),
			ambiguous: 1,
		},
		{
			name: "a co-tenant's long wait behind another holder does not make an injection ambiguous",
			// a.0 calls acquire at 20 but b.0 holds until 60, so a.0
			// cannot have held the lock before 60; the injection at 80 is
			// after a.0 released.
			events: events(fenceAround(13, stress.VerdictTakeover, "bypass"),
				tenure("b.0", 1, 11, 20, 21, 60, 61), tenure("a.0", 1, 12, 20, 61.5, 70, 71), inject("append", 80, 80.1)),
			unheld: 1, expected: 1, detected: 1,
		},
		{
			name:      "a change right after the fence's own release call is ambiguous",
			events:    events(fenceAround(11, stress.VerdictAccepted, ""), inject("append", 11.5, 11.6)),
			ambiguous: 1,
		},
		{
			name:      "a change while the fence's reacquire was under way is ambiguous",
			events:    events(fenceAround(11, stress.VerdictAccepted, ""), inject("append", 99.5, 99.6)),
			ambiguous: 1,
		},
		{
			name:           "a takeover with nothing in the window is false",
			events:         fenceAround(11, stress.VerdictTakeover, "bypass"),
			falseTakeovers: 1,
		},
		{
			name:           "a change before the window does not excuse a takeover in it",
			events:         events(fenceAround(11, stress.VerdictTakeover, "bypass"), inject("append", 5, 5.1)),
			attributed:     1,
			falseTakeovers: 1,
		},
		{
			name: "a takeover at release needs a change during the fence's own tenure",
			events: events(tenure("c.0", 1, 10, 0, 1, 10, 11),
				stress.Event{Kind: "window", Worker: "c.0", Session: checkSession, Window: &stress.WindowRecord{
					ReleasedTenure: 1, Released: 10, RelCall: ms(10), RelRet: ms(10.5), Verdict: stress.VerdictTakeoverAtRelease, Cause: "intrusion"}},
				inject("append", 5, 5.1)),
			attributed: 1, takeoversAtRelease: 1,
		},
		{
			name: "a takeover at release without such a change is false",
			events: events(tenure("c.0", 1, 10, 0, 1, 10, 11),
				stress.Event{Kind: "window", Worker: "c.0", Session: checkSession, Window: &stress.WindowRecord{
					ReleasedTenure: 1, Released: 10, RelCall: ms(10), RelRet: ms(10.5), Verdict: stress.VerdictTakeoverAtRelease, Cause: "intrusion"}}),
			takeoversAtRelease: 1, falseTakeovers: 1,
		},
		{
			name:      "a failed injection may not have happened: ambiguous, never required",
			events:    events(fenceAround(11, stress.VerdictAccepted, ""), func() stress.Event { e := inject("rewrite", 50, 50.1); e.Err = "EIO"; return e }()),
			ambiguous: 1,
		},
		{
			name:     "a lock file replaced in the window requires a takeover",
			events:   events(fenceAround(11, stress.VerdictAccepted, ""), inject("lock-rm", 50, 50.1)),
			expected: 1, missedTakeovers: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := checkLog(t, "appends", "", tt.events)
			require.Equal(t, tt.unheld, f.Unheld, "unheld")
			require.Equal(t, tt.attributed, f.Attributed, "attributed")
			require.Equal(t, tt.ambiguous, f.Ambiguous, "ambiguous")
			require.Equal(t, tt.expected, f.TakeoversExpected, "expected")
			require.Equal(t, tt.detected, f.TakeoversDetected, "detected")
			require.Equal(t, tt.other, f.TakeoversWithOtherCause, "other cause")
			require.Equal(t, tt.falseTakeovers, f.FalseTakeovers, "false; samples %v", f.FalseSamples)
			require.Equal(t, tt.missedTakeovers, f.MissedTakeovers, "missed")
			require.Equal(t, tt.takeoversAtRelease, f.TakeoversAtRelease, "at release")
			require.Zero(t, f.Errors, "errors: %v", f.ErrorSamples)
		})
	}
}

func TestCheckerFindsOverlapsAndTellsNoticedOnesApart(t *testing.T) {
	t.Run("unnoticed", func(t *testing.T) {
		f := checkLog(t, "appends", "", events(tenure("a.0", 1, 1, 0, 1, 10, 11), tenure("b.0", 1, 2, 5, 6, 20, 21)))
		require.Equal(t, 1, f.Overlaps)
		require.Equal(t, []string{"OVERLAPS (unnoticed)=1"}, f.Failures())
	})
	t.Run("touching bounds are no overlap", func(t *testing.T) {
		// b's acquire returned after a called release: the lock may have
		// passed between them.
		f := checkLog(t, "appends", "", events(tenure("a.0", 1, 1, 0, 1, 10, 11), tenure("b.0", 1, 2, 5, 10.5, 20, 21)))
		require.Zero(t, f.Overlaps)
	})
	t.Run("noticed through a lost lock file", func(t *testing.T) {
		f := checkLog(t, "lockfile", "", events(lostTenure("a.0", 1, 1, 0, 1, 10, 11), tenure("b.0", 1, 2, 5, 6, 20, 21), inject("lock-rm", 3, 3.1)))
		require.Zero(t, f.Overlaps)
		require.Equal(t, 1, f.NoticedOverlaps)
		require.Equal(t, 1, f.LockInjectionsHeld)
		require.Zero(t, f.LockLossUnnoticed)
		require.Zero(t, f.LockLostSpurious)
	})
	t.Run("a lock file replaced under a holder that did not notice", func(t *testing.T) {
		f := checkLog(t, "lockfile", "", events(tenure("a.0", 1, 1, 0, 1, 10, 11), inject("lock-mv-empty", 3, 3.1)))
		require.Equal(t, 1, f.LockLossUnnoticed)
	})
	t.Run("a lost lock with no injection", func(t *testing.T) {
		f := checkLog(t, "lockfile", "", events(lostTenure("a.0", 1, 1, 0, 1, 10, 11)))
		require.Equal(t, 1, f.LockLostSpurious)
	})
}

func TestCheckerCountsLostDuplicatedAndUnacknowledgedLines(t *testing.T) {
	content := `{"w":"a.0","seq":1,"gen":1}` + "\n" +
		`{"w":"a.0","seq":2,"gen":1}` + "\n" +
		`{"w":"a.0","seq":2,"gen":1}` + "\n" +
		`{"inject":1,"op":"append"}` + "\n" +
		`{"w":"b.0","seq":1,"gen":2}` + "\n"
	evs := events(tenure("a.0", 1, 1, 0, 1, 10, 11), ack("a.0", 1, 1), ack("a.0", 1, 2), ack("a.0", 1, 3))
	for _, tt := range []struct {
		phase string
		lost  int
	}{{"appends", 1}, {"destructive", 0}} {
		t.Run(tt.phase, func(t *testing.T) {
			f := checkLog(t, tt.phase, content, evs)
			require.Equal(t, 3, f.LinesAcked)
			require.Equal(t, tt.lost, f.LinesLost, "seq 3 is missing; only counted where nothing may destroy lines")
			require.Equal(t, 1, f.LinesDuplicated, "seq 2 is there twice, in every phase a failure")
			require.Equal(t, 1, f.LinesUnacked, "b.0's line was never acknowledged")
			require.Equal(t, 1, f.LinesInjected)
		})
	}
	t.Run("generations out of order", func(t *testing.T) {
		content := `{"w":"a.0","seq":1,"gen":2}` + "\n" + `{"w":"b.0","seq":1,"gen":1}` + "\n"
		f := checkLog(t, "appends", content, nil)
		require.Equal(t, 1, f.OrderViolations)
	})
	t.Run("a line cut short", func(t *testing.T) {
		f := checkLog(t, "appends", `{"w":"a.0","seq":1,"gen":1}`+"\n"+`{"w":"a.0","se`, nil)
		require.Equal(t, 1, f.GarbledChecked)
	})
}

func TestCheckerJudgesWindowsThatSpanAKilledHolder(t *testing.T) {
	// d.0 (process d) acquires generation 11 inside the window and is
	// killed at 60 ms without calling Release.
	dead := func(acked bool) []stress.Event {
		ev := []stress.Event{{Kind: "acquired", Worker: "d.0", Tenure: 1, Session: checkSession, Gen: 11, T0: ms(30), T1: ms(31)}}
		if acked {
			ev = append(ev, ack("d.0", 1, 1))
		}
		return append(ev, kill("d", 60, 61))
	}
	died := stress.WindowTenure{Gen: 11, PID: 4242, Died: true}
	tests := []struct {
		name                       string
		events                     []stress.Event
		reported, unreported, miss int
		content                    string
	}{
		{name: "accepted and listed as died", events: events(fenceAround(12, stress.VerdictAccepted, "", died), dead(false)), reported: 1},
		{name: "accepted without the dead tenure", events: events(fenceAround(12, stress.VerdictAccepted, ""), dead(false)), unreported: 1},
		{name: "accepted although the dead holder had written", events: events(fenceAround(12, stress.VerdictAccepted, "", died), dead(true)),
			reported: 1, miss: 1, content: `{"w":"d.0","seq":1,"gen":11}` + "\n"},
		{name: "takeover because the dead holder had written", events: events(fenceAround(12, stress.VerdictTakeover, "holder-died"), dead(true)),
			content: `{"w":"d.0","seq":1,"gen":11}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := checkLog(t, "kill", tt.content, tt.events)
			require.Equal(t, 1, f.DeadTenures)
			require.Equal(t, 1, f.DeadSpanned)
			require.Equal(t, tt.reported, f.DeadReported)
			require.Equal(t, tt.unreported, f.DeadUnreported)
			require.Equal(t, tt.miss, f.MissedTakeovers)
			require.Zero(t, f.FalseTakeovers, "a kill in the window is a cause")
			require.Zero(t, f.LinesLost)
			require.Zero(t, f.Errors, "errors: %v", f.ErrorSamples)
		})
	}
}

func TestCheckerMeasuresHandOffs(t *testing.T) {
	// b.0 waits from 5 ms; a.0 calls release at 10 ms; b.0 has the lock at
	// 10.4 ms: a hand-off of 0.4 ms. c.0 comes later and did not wait.
	f := checkLog(t, "appends", "", events(
		tenure("a.0", 1, 1, 0, 1, 10, 10.2),
		tenure("b.0", 1, 2, 5, 10.4, 20, 20.1),
		tenure("c.0", 1, 3, 30, 30.5, 40, 40.1),
	))
	h := f.Handoff()
	require.Equal(t, 1, h.N)
	require.Equal(t, 400*time.Microsecond, h.Max)
	require.Equal(t, 1, f.HandoffCrossProcess().N)
}
