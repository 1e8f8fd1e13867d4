package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"

	"github.com/sessionlock/sessionlock"
)

const (
	// workerTimeout bounds every wait for a worker's answer.
	workerTimeout = 30 * time.Second
	// handoffWarmup rounds of each kind run before the measured ones.
	handoffWarmup = 5
	// cancelAfter is the deadline of the waiter whose cancellation figure 4
	// checks.
	cancelAfter = 50 * time.Millisecond
	// waitersSettle is how long the cancelled waiters wait before their
	// context ends; the thread count is sampled every threadSample.
	waitersSettle = 300 * time.Millisecond
	threadSample  = 10 * time.Millisecond
	// threadAllowance is how many more OS threads than before the waiters
	// may leave behind for the figure to pass.
	threadAllowance = 16
)

// monotonic reads CLOCK_MONOTONIC, which every process on the machine
// shares, in nanoseconds.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// worker is a running re-execution of this program in a worker mode.
type worker struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	pipe *os.File
	out  *bufio.Reader
}

func startWorker(mode, file string) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-worker", mode, "-file", file)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pipe, _ := out.(*os.File)
	return &worker{cmd: cmd, in: in, pipe: pipe, out: bufio.NewReader(out)}, nil
}

func (w *worker) send(line string) error {
	_, err := io.WriteString(w.in, line+"\n")
	return err
}

// expect reads the worker's next line, which must start with word, and
// returns the fields after it.
func (w *worker) expect(word string) ([]string, error) {
	if w.pipe != nil {
		_ = w.pipe.SetReadDeadline(time.Now().Add(workerTimeout))
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("worker %s: waiting for %q: %w", w.cmd.Args[2], word, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != word {
		return nil, fmt.Errorf("worker %s: want %q, got %q", w.cmd.Args[2], word, strings.TrimSpace(line))
	}
	return f[1:], nil
}

// close ends the worker by closing its input, and kills it if it does not
// exit.
func (w *worker) close() {
	_ = w.in.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(workerTimeout):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// openLockFD opens a lock file for bare flock(2) calls.
func openLockFD(path string) (int, error) {
	return unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
}

// handOff runs one round of figure 4 from process A's side. A holds the
// lock (take), tells B to wait, keeps the lock for hold after B says it is
// waiting, then releases (give) and returns how long after the release
// started B's acquire returned, both on CLOCK_MONOTONIC.
func handOff(w *worker, hold time.Duration, take, give func() error) (int64, error) {
	if err := take(); err != nil {
		return 0, err
	}
	if err := w.send("wait"); err != nil {
		return 0, err
	}
	if _, err := w.expect("waiting"); err != nil {
		return 0, err
	}
	time.Sleep(hold)
	t0 := monotonic()
	if err := give(); err != nil {
		return 0, err
	}
	f, err := w.expect("acquired")
	if err != nil {
		return 0, err
	}
	if _, err := w.expect("released"); err != nil {
		return 0, err
	}
	t1, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	return t1 - t0, nil
}

func handoffFigure(b *bench) (*result, error) {
	r := &result{Figure: "4", Name: "cross-process hand-off (A starts Release -> waiting B's Acquire returns, CLOCK_MONOTONIC)"}
	session, err := b.newSession("handoff", sessionSize)
	if err != nil {
		return r, err
	}
	lockPath := session + ".lock"
	rawPath := filepath.Join(b.dir, "raw.lock")
	rawFD, err := openLockFD(rawPath)
	if err != nil {
		return r, err
	}
	defer unix.Close(rawFD)
	// A second open file description of the session's lock file, for the
	// rounds where A is a bare flock holder of it.
	sessionFD, err := openLockFD(lockPath)
	if err != nil {
		return r, err
	}
	defer unix.Close(sessionFD)

	ours, err := startWorker("handoff-sessionlock", session)
	if err != nil {
		return r, err
	}
	defer ours.close()
	kernel, err := startWorker("handoff-flock", rawPath)
	if err != nil {
		return r, err
	}
	defer kernel.close()
	bareB, err := startWorker("handoff-flock", lockPath)
	if err != nil {
		return r, err
	}
	defer bareB.close()

	var l *sessionlock.Lock
	takeOurs := func() (err error) {
		l, err = sessionlock.AcquireSessionWriteLock(context.Background(), session)
		return err
	}
	giveOurs := func() error { return l.Release() }
	take := func(fd int) func() error { return func() error { return unix.Flock(fd, unix.LOCK_EX) } }
	give := func(fd int) func() error { return func() error { return unix.Flock(fd, unix.LOCK_UN) } }

	// Four kinds of round: the figure's two, and two mixed ones that split
	// our cost between A's release and B's acquire. Every kind gets the
	// same hold times, and the order rotates from round to round.
	kinds := []struct {
		w          *worker
		take, give func() error
		lat        []float64
	}{
		{w: ours, take: takeOurs, give: giveOurs},
		{w: kernel, take: take(rawFD), give: give(rawFD)},
		{w: bareB, take: takeOurs, give: giveOurs},
		{w: ours, take: take(sessionFD), give: give(sessionFD)},
	}
	rng := rand.New(rand.NewPCG(4, 4))
	span := int64(b.cfg.holdMax - b.cfg.holdMin)
	for round := -handoffWarmup; round < b.cfg.handoffs; round++ {
		hold := b.cfg.holdMin + time.Duration(rng.Int64N(span+1))
		for i := range kinds {
			k := &kinds[(i+max(round, 0))%len(kinds)]
			lat, err := handOff(k.w, hold, k.take, k.give)
			if err != nil {
				return r, err
			}
			if round >= 0 {
				k.lat = append(k.lat, float64(lat))
			}
		}
	}
	r.Ours = summarise("sessionlock Release -> Acquire in another process", "ns", kinds[0].lat)
	r.Baseline = summarise("flock(2) LOCK_UN -> blocked LOCK_EX in another process", "ns", kinds[1].lat)
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal, r.Verdict = "median <= 2x, cancellation works, threads bounded", verdict(r.Ratio, "<=", 2)
	r.Details = append(r.Details,
		detail{"median, A sessionlock Release -> B bare flock(2) (our release side)", quantile(kinds[2].lat, 0.5), "ns"},
		detail{"median, A bare flock(2) -> B sessionlock Acquire (our acquire side)", quantile(kinds[3].lat, 0.5), "ns"})
	r.Notes = append(r.Notes, fmt.Sprintf("A keeps the lock %v to %v (uniform) after B starts waiting", b.cfg.holdMin, b.cfg.holdMax))

	// Cancellation: B waits with a deadline while A holds the lock; then a
	// normal hand-off must still work.
	if err := takeOurs(); err != nil {
		return r, err
	}
	took, ok, err := cancelledWait(ours)
	if rerr := giveOurs(); err == nil {
		err = rerr
	}
	if err != nil {
		return r, err
	}
	if _, err := handOff(ours, b.cfg.holdMin, takeOurs, giveOurs); err != nil {
		return r, fmt.Errorf("hand-off after a cancelled wait: %w", err)
	}
	r.Details = append(r.Details,
		detail{"cancelled wait in B returned after (deadline " + cancelAfter.String() + ")", float64(took), "ns"})
	if !ok {
		r.Verdict = "MISS"
		r.Notes = append(r.Notes, "B's cancelled wait did not return a *WaitError wrapping context.DeadlineExceeded")
	}

	// Threads: first every waiter on this session, then each on a
	// session of its own, which needs a blocked flock(2) per lock file.
	distinct := make([]string, b.cfg.waiters)
	for i := range distinct {
		if distinct[i], err = b.newSession(fmt.Sprintf("waiter-%04d", i), 1); err != nil {
			return r, err
		}
	}
	for _, c := range []struct {
		what     string
		sessions []string
	}{
		{fmt.Sprintf("%d waiters on one held session", b.cfg.waiters), []string{session}},
		{fmt.Sprintf("%d waiters on %d distinct held sessions", b.cfg.waiters, len(distinct)), distinct},
	} {
		t, err := cancelledWaiters(c.sessions, b.cfg.waiters)
		if err != nil {
			return r, err
		}
		r.Details = append(r.Details,
			detail{c.what + ": OS threads before (baseline)", float64(t.before), "count"},
			detail{c.what + ": OS threads at the peak of the wait", float64(t.peak), "count"},
			detail{c.what + ": OS threads after all were cancelled", float64(t.after), "count"},
			detail{c.what + ": time for all to return after cancel", float64(t.took), "ns"},
		)
		if t.after-t.before > threadAllowance {
			r.Verdict = "MISS"
			r.Notes = append(r.Notes, fmt.Sprintf("%s: cancelling them left %d more OS threads (allowance %d)", c.what, t.after-t.before, threadAllowance))
		}
	}
	return r, nil
}

// cancelledWait asks the sessionlock worker to wait with a deadline of
// cancelAfter while the lock is held, and returns how long its wait took
// and whether it failed as documented.
func cancelledWait(w *worker) (time.Duration, bool, error) {
	if err := w.send("cancel " + cancelAfter.String()); err != nil {
		return 0, false, err
	}
	if _, err := w.expect("waiting"); err != nil {
		return 0, false, err
	}
	f, err := w.expect("cancelled")
	if err != nil {
		return 0, false, err
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || len(f) < 2 {
		return 0, false, fmt.Errorf("bad answer from worker: %q", f)
	}
	return time.Duration(ns), f[1] == "ok", nil
}

// threadCounts is what cancelledWaiters saw.
type threadCounts struct {
	before, peak, after int
	took                time.Duration
}

// cancelledWaiters holds the lock file of each session through a second
// open file description, as another process would, starts n goroutines
// waiting for the sessions in turn, cancels them, and counts the OS
// threads before, at the peak while they wait, and after. Then it lets go
// of the lock files and takes one tenure on each session, so that no
// waiter is left over.
func cancelledWaiters(sessions []string, n int) (threadCounts, error) {
	var t threadCounts
	holders := make([]*flock.Flock, len(sessions))
	defer func() {
		for _, fl := range holders {
			if fl != nil {
				_ = fl.Unlock()
			}
		}
	}()
	for i, s := range sessions {
		holders[i] = flock.New(s + ".lock")
		if err := holders[i].Lock(); err != nil {
			return t, err
		}
	}

	t.before = threadCount()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg         sync.WaitGroup
		unexpected atomic.Int64
		firstErr   atomic.Value
	)
	for i := range n {
		wg.Go(func() {
			l, err := sessionlock.AcquireSessionWriteLock(ctx, sessions[i%len(sessions)])
			if err == nil {
				_ = l.Release()
				unexpected.Add(1)
				return
			}
			if !errors.Is(err, context.Canceled) {
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	t.peak = t.before
	for deadline := time.Now().Add(waitersSettle); time.Now().Before(deadline); time.Sleep(threadSample) {
		t.peak = max(t.peak, threadCount())
	}
	start := time.Now()
	cancel()
	wg.Wait()
	t.took = time.Since(start)
	t.after = threadCount()
	t.peak = max(t.peak, t.after)

	if e := firstErr.Load(); e != nil {
		return t, fmt.Errorf("a cancelled waiter failed otherwise: %w", e.(error))
	}
	if u := unexpected.Load(); u > 0 {
		return t, fmt.Errorf("%d waiters got a lock that another holder had", u)
	}

	for i, fl := range holders {
		if err := fl.Unlock(); err != nil {
			return t, err
		}
		holders[i] = nil
	}
	for _, s := range sessions {
		ctx, cancel := context.WithTimeout(context.Background(), workerTimeout)
		l, err := sessionlock.AcquireSessionWriteLock(ctx, s)
		cancel()
		if err == nil {
			err = l.Release()
		}
		if err != nil {
			return t, fmt.Errorf("tenure after the cancelled waiters: %w", err)
		}
	}
	return t, nil
}

// handoffWorker is process B of figure 4. On "wait" it says "waiting",
// blocks until it has the lock, says "acquired T" with T its CLOCK_MONOTONIC
// reading as the acquire returned, releases and says "released". On
// "cancel D" (sessionlock only) it waits at most D and says "cancelled NS
// ok" when the wait ended in a *WaitError wrapping the deadline.
func handoffWorker(mode, file string) int {
	var acquire func(ctx context.Context) (release func() error, err error)
	switch mode {
	case "handoff-sessionlock":
		acquire = func(ctx context.Context) (func() error, error) {
			l, err := sessionlock.AcquireSessionWriteLock(ctx, file)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
	case "handoff-flock":
		fd, err := openLockFD(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		acquire = func(context.Context) (func() error, error) {
			if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
				return nil, err
			}
			return func() error { return unix.Flock(fd, unix.LOCK_UN) }, nil
		}
	default:
		fmt.Fprintf(os.Stderr, "sessionlock-bench -worker: unknown mode %q\n", mode)
		return 2
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		var err error
		switch cmd[0] {
		case "wait":
			err = waitOnce(acquire)
		case "cancel":
			err = waitCancelled(acquire, cmd[1:])
		default:
			err = fmt.Errorf("unknown command %q", cmd[0])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sessionlock-bench -worker:", err)
			return 1
		}
	}
	return 0
}

func waitOnce(acquire func(context.Context) (func() error, error)) error {
	fmt.Println("waiting")
	release, err := acquire(context.Background())
	t1 := monotonic()
	if err != nil {
		return err
	}
	fmt.Println("acquired", t1)
	if err := release(); err != nil {
		return err
	}
	fmt.Println("released")
	return nil
}

func waitCancelled(acquire func(context.Context) (func() error, error), args []string) error {
	if len(args) != 1 {
		return errors.New("cancel needs a duration")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fmt.Println("waiting")
	start := time.Now()
	release, err := acquire(ctx)
	took := time.Since(start)
	if err == nil {
		fmt.Println("cancelled", took.Nanoseconds(), "acquired-instead")
		return release()
	}
	var we *sessionlock.WaitError
	verdict := "wrong-error"
	if errors.As(err, &we) && errors.Is(err, context.DeadlineExceeded) {
		verdict = "ok"
	}
	fmt.Println("cancelled", took.Nanoseconds(), verdict)
	return nil
}
