package stress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/sessionlock/sessionlock"
)

// RunWorker runs the worker process described by the spec file at path: a
// process of tenants and controllers, or the injector. It returns when the
// spec's stop time has passed or standard input has closed, and every
// goroutine has ended its tenure.
func RunWorker(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sp Spec
	if err := json.Unmarshal(raw, &sp); err != nil {
		return fmt.Errorf("spec %s: %w", path, err)
	}
	log, err := createLog(sp.Log)
	if err != nil {
		return err
	}
	defer log.close()
	// An interrupt at a terminal reaches the whole process group; the
	// harness handles it and stops its workers through their standard
	// input, so that none dies mid-tenure unrecorded.
	signal.Ignore(os.Interrupt)

	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	timer := time.AfterFunc(time.Duration(sp.StopAt-Now()), halt)
	defer timer.Stop()
	go func() {
		// The harness closes our standard input to stop us early.
		_, _ = io.Copy(io.Discard, os.Stdin)
		halt()
	}()

	switch sp.Role {
	case roleTenants:
		return runTenants(&sp, log, stop)
	case roleInjector:
		return runInjector(&sp, log, stop)
	}
	return fmt.Errorf("spec %s: unknown role %q", path, sp.Role)
}

// worker is one goroutine of a tenants process.
type worker struct {
	id      string
	sp      *Spec
	log     *eventLog
	stop    <-chan struct{}
	rng     *rand.Rand
	opts    []sessionlock.Option
	tenures int // tenures begun, numbering them from 1
	seq     int // lines appended
}

func runTenants(sp *Spec, log *eventLog, stop <-chan struct{}) error {
	mode, err := parseMode(sp.Mode)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for g := 0; g < sp.Goroutines; g++ {
		w := &worker{
			id:   fmt.Sprintf("%s.%d", sp.Proc, g),
			sp:   sp,
			log:  log,
			stop: stop,
			rng:  rand.New(rand.NewPCG(sp.Seed, uint64(g))),
		}
		w.opts = []sessionlock.Option{sessionlock.WithOwner(w.id), sessionlock.WithFingerprintMode(mode)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g < sp.Controllers {
				w.control()
			} else {
				w.tenant()
			}
		}()
	}
	wg.Wait()
	return nil
}

func (w *worker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
	}
	return w.sp.Tenures > 0 && w.tenures >= w.sp.Tenures
}

// sleep pauses for a random time up to max.
func (w *worker) sleep(max time.Duration) {
	if max > 0 {
		time.Sleep(time.Duration(w.rng.Int64N(int64(max) + 1)))
	}
}

func (w *worker) pickSession() string {
	return w.sp.Sessions[w.rng.IntN(len(w.sp.Sessions))]
}

func (w *worker) fail(session, what string, err error) {
	w.log.write(Event{Kind: evError, Worker: w.id, Session: session, T0: Now(), Err: what + ": " + err.Error()})
}

// acquire takes a tenure on session and logs it.
func (w *worker) acquire(session string) (*sessionlock.Lock, int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), w.sp.OpTimeout)
	defer cancel()
	t0 := Now()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, filepath.Join(w.sp.Dir, session), w.opts...)
	t1 := Now()
	if err != nil {
		w.fail(session, "acquire", err)
		return nil, 0, false
	}
	w.tenures++
	w.log.write(Event{Kind: evAcquired, Worker: w.id, Tenure: w.tenures, Session: session, Gen: l.Epoch(), T0: t0, T1: t1})
	return l, w.tenures, true
}

// appendLines appends up to max lines through l, logging each one that
// Append acknowledged.
func (w *worker) appendLines(l *sessionlock.Lock, n int, session string, max int) bool {
	for k := w.rng.IntN(max + 1); k > 0; k-- {
		w.seq++
		line := fmt.Sprintf("{\"w\":%q,\"seq\":%d,\"gen\":%d}\n", w.id, w.seq, l.Epoch())
		if _, err := l.Append([]byte(line)); err != nil {
			w.fail(session, "append", err)
			return false
		}
		w.log.write(Event{Kind: evAck, Worker: w.id, Tenure: n, Session: session, Seq: w.seq, T0: Now()})
	}
	return true
}

// end ends tenure n by calling release (Lock.Release or PromptFence.Close)
// and logs it.
func (w *worker) end(n int, session string, release func() error) {
	w.log.write(Event{Kind: evReleasing, Worker: w.id, Tenure: n, Session: session, T0: Now()})
	t0 := Now()
	err := release()
	t1 := Now()
	e := Event{Kind: evReleased, Worker: w.id, Tenure: n, Session: session, T0: t0, T1: t1}
	if err != nil {
		e.Err = err.Error()
		e.Lost = errors.Is(err, sessionlock.ErrLockLost)
	}
	w.log.write(e)
}

// tenant takes short tenures on random sessions and appends a few lines in
// each.
func (w *worker) tenant() {
	for !w.stopped() {
		session := w.pickSession()
		l, n, ok := w.acquire(session)
		if !ok {
			w.sleep(w.sp.GapMax)
			continue
		}
		w.appendLines(l, n, session, 3)
		w.sleep(w.sp.HoldMax)
		w.end(n, session, l.Release)
		w.sleep(w.sp.GapMax)
	}
}

// control drives prompt fences: it holds a session, appends, releases it
// for a simulated prompt and reacquires, window after window, until a
// takeover or an error ends the fence; then it starts a new one.
func (w *worker) control() {
	for !w.stopped() {
		session := w.pickSession()
		l, n, ok := w.acquire(session)
		if !ok {
			w.sleep(w.sp.GapMax)
			continue
		}
		fence := sessionlock.NewPromptFence(l)
		w.appendLines(l, n, session, 2)
		w.sleep(w.sp.HoldMax)
		for {
			var more bool
			n, more = w.window(fence, n, session)
			if !more {
				break
			}
		}
		w.sleep(w.sp.GapMax)
	}
}

// window runs one prompt window of fence, whose current tenure is n. It
// returns the tenure the fence holds afterwards and whether the fence may
// go on; when it may not, the fence is closed.
func (w *worker) window(fence *sessionlock.PromptFence, n int, session string) (int, bool) {
	rec := &WindowRecord{ReleasedTenure: n, Released: fence.Lock().Epoch()}
	w.log.write(Event{Kind: evReleasing, Worker: w.id, Tenure: n, Session: session, T0: Now()})
	rec.RelCall = Now()
	err := fence.ReleaseForPrompt()
	rec.RelRet = Now()

	var te *sessionlock.TakeoverError
	if errors.As(err, &te) {
		// The fence's own tenure was not exclusive; it still holds it.
		rec.Verdict = VerdictTakeoverAtRelease
		fillTakeover(rec, te)
		w.log.write(Event{Kind: evWindow, Worker: w.id, Session: session, Window: rec})
		w.end(n, session, fence.Close)
		return n, false
	}
	released := Event{Kind: evReleased, Worker: w.id, Tenure: n, Session: session, T0: rec.RelCall, T1: rec.RelRet, Fence: true}
	if err != nil {
		released.Err = err.Error()
		released.Lost = errors.Is(err, sessionlock.ErrLockLost)
		w.log.write(released)
		_ = fence.Close()
		return n, false
	}
	w.log.write(released)

	if w.stopped() {
		_ = fence.Close()
		return n, false
	}
	w.sleep(w.sp.PromptMax)

	ctx, cancel := context.WithTimeout(context.Background(), w.sp.OpTimeout)
	defer cancel()
	rec.ReacqCall = Now()
	err = fence.Reacquire(ctx)
	rec.ReacqRet = Now()
	held := fence.Lock()
	if held == nil {
		// Reacquire failed without taking the lock.
		rec.Verdict = VerdictError
		w.log.write(Event{Kind: evWindow, Worker: w.id, Session: session, Window: rec, Err: fmt.Sprint(err)})
		w.fail(session, "reacquire", err)
		_ = fence.Close()
		return n, false
	}
	w.tenures++
	n = w.tenures
	rec.ReacquiredTenure, rec.Reacquired = n, held.Epoch()
	w.log.write(Event{Kind: evAcquired, Worker: w.id, Tenure: n, Session: session, Gen: rec.Reacquired,
		T0: rec.ReacqCall, T1: rec.ReacqRet, Fence: true})

	switch {
	case errors.As(err, &te):
		rec.Verdict = VerdictTakeover
		fillTakeover(rec, te)
		w.log.write(Event{Kind: evWindow, Worker: w.id, Session: session, Window: rec})
		// A controller would reload the session now; this one starts over.
		w.end(n, session, fence.Close)
		return n, false
	case err != nil:
		rec.Verdict = VerdictError
		w.log.write(Event{Kind: evWindow, Worker: w.id, Session: session, Window: rec, Err: err.Error()})
		w.fail(session, "reacquire", err)
		w.end(n, session, fence.Close)
		return n, false
	}

	rec.Verdict = VerdictAccepted
	win := fence.Window()
	rec.Unrecorded = win.Unrecorded
	for _, t := range win.Tenures {
		rec.Tenures = append(rec.Tenures, WindowTenure{Gen: t.Generation, PID: t.PID, Died: t.Died, Wrote: t.Wrote})
	}
	w.log.write(Event{Kind: evWindow, Worker: w.id, Session: session, Window: rec})
	w.appendLines(held, n, session, 2)
	w.sleep(w.sp.HoldMax)
	if w.stopped() {
		w.end(n, session, fence.Close)
		return n, false
	}
	return n, true
}

func fillTakeover(rec *WindowRecord, te *sessionlock.TakeoverError) {
	rec.Cause, rec.Change, rec.BreakGen = te.Cause.String(), te.Change.String(), te.BreakGeneration
	if te.DeadHolder != nil {
		rec.DeadPID = te.DeadHolder.PID
	}
}
