package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"

	"github.com/sessionlock/sessionlock"
)

// sessionSize is the size of the session file in figures 1 to 4.
const sessionSize = 1 << 20

// contenders is how many goroutines take turns in figure 3.
const contenders = 4

// scanBuffer is the read size for the baseline reads in figure 6, the same
// as the library's content scans.
const scanBuffer = 256 << 10

// newSession writes a session file of size bytes of JSON lines in the
// bench directory and returns its path.
func (b *bench) newSession(name string, size int) (string, error) {
	p := filepath.Join(b.dir, name+".jsonl")
	line := []byte(`{"role":"assistant","content":"` + string(bytes.Repeat([]byte("x"), 200)) + "\"}\n")
	data := bytes.Repeat(line, size/len(line)+1)[:size]
	data[len(data)-1] = '\n'
	return p, os.WriteFile(p, data, 0o644)
}

// bareCycle is the baseline of figures 1 and 2: what taking and dropping a
// flock costs through gofrs/flock, with nothing else (open, flock, unlock,
// close).
func bareCycle(lockPath string) func() error {
	return func() error {
		fl := flock.New(lockPath)
		if err := fl.Lock(); err != nil {
			return err
		}
		return fl.Unlock()
	}
}

func tenure(session string) func() error {
	return func() error {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), session)
		if err != nil {
			return err
		}
		return l.Release()
	}
}

func tenureFigure(b *bench) (*result, error) {
	r := &result{Figure: "1", Name: "uncontended tenure (AcquireSessionWriteLock + Release, existing 1 MiB session, default mode)"}
	session, err := b.newSession("tenure", sessionSize)
	if err != nil {
		return r, err
	}
	ours, base, err := alternate(b.cfg.rounds, b.cfg.iterations, tenure(session), bareCycle(filepath.Join(b.dir, "bare.lock")))
	if err != nil {
		return r, err
	}
	r.Ours = summarise("Acquire + Release", "ns", ours)
	r.Baseline = summarise("gofrs/flock New + Lock + Unlock", "ns", base)
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal, r.Verdict = "<= 1.5x", verdict(r.Ratio, "<=", 1.5)

	// The floor: the same tenure's system calls issued bare, against the
	// same bare cycle, in rounds of their own.
	return r, addFloor(b, r, session, true, tenure(session), "the tenure's 11 system calls")
}

// addFloor measures ours against the floor (see floorCycle) in rounds of
// their own, and adds both to r's details; it adds nothing where there is
// no floor.
func addFloor(b *bench, r *result, session string, withPath bool, ours func() error, what string) error {
	floor, closeFloor, err := floorCycle(session, withPath)
	if err != nil || floor == nil {
		return err
	}
	defer closeFloor()
	o, f, err := alternate(b.cfg.rounds, b.cfg.iterations, ours, floor)
	if err != nil {
		return err
	}
	om, fm := quantile(o, 0.5), quantile(f, 0.5)
	r.Details = append(r.Details,
		detail{"floor: " + what + " issued bare (median)", fm, "ns"},
		detail{"floor / bare gofrs/flock cycle", fm / r.Baseline.Median, "ratio"},
		detail{"ours / floor, rounds of their own", om / fm, "ratio"})
	return nil
}

func fenceFigure(b *bench) (*result, error) {
	r := &result{Figure: "2", Name: "fence cycle (ReleaseForPrompt + Reacquire, unchanged 1 MiB session, default mode)"}
	session, err := b.newSession("fence", sessionSize)
	if err != nil {
		return r, err
	}
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), session)
	if err != nil {
		return r, err
	}
	pf := sessionlock.NewPromptFence(l)
	defer pf.Close()
	cycle := func() error {
		if err := pf.ReleaseForPrompt(); err != nil {
			return err
		}
		return pf.Reacquire(context.Background())
	}

	ours, base, err := alternate(b.cfg.rounds, b.cfg.iterations, cycle, bareCycle(filepath.Join(b.dir, "bare.lock")))
	if err != nil {
		return r, err
	}
	r.Ours = summarise("ReleaseForPrompt + Reacquire", "ns", ours)
	r.Baseline = summarise("gofrs/flock New + Lock + Unlock", "ns", base)
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal, r.Verdict = "<= 2.5x", verdict(r.Ratio, "<=", 2.5)
	r.Notes = append(r.Notes, "mode "+pf.FingerprintMode().String())
	return r, addFloor(b, r, session, false, cycle, "the fence cycle's 9 system calls")
}

// holder is one contender's way of taking and dropping a lock.
type holder interface {
	acquire() error
	release() error
}

type tenureHolder struct {
	session string
	l       *sessionlock.Lock
}

func (h *tenureHolder) acquire() (err error) {
	h.l, err = sessionlock.AcquireSessionWriteLock(context.Background(), h.session)
	return err
}

func (h *tenureHolder) release() error { return h.l.Release() }

// mutexHolder is figure 3's baseline: the bare cycle behind a sync.Mutex.
type mutexHolder struct {
	mu       *sync.Mutex
	lockPath string
	fl       *flock.Flock
}

func (h *mutexHolder) acquire() error {
	h.mu.Lock()
	h.fl = flock.New(h.lockPath)
	if err := h.fl.Lock(); err != nil {
		h.mu.Unlock()
		return err
	}
	return nil
}

func (h *mutexHolder) release() error {
	err := h.fl.Unlock()
	h.mu.Unlock()
	return err
}

// contend runs contenders goroutines that take and drop the lock for d and
// returns the throughput and every wait (from asking for the lock to
// holding it) in nanoseconds.
func contend(d time.Duration, newHolder func() holder) (perSec float64, waits []float64, err error) {
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		total int
	)
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for range contenders {
		wg.Go(func() {
			h := newHolder()
			var mine []float64
			var err error
			for !stop.Load() {
				t := time.Now()
				if err = h.acquire(); err != nil {
					break
				}
				mine = append(mine, float64(time.Since(t).Nanoseconds()))
				if err = h.release(); err != nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, mine...)
			total += len(mine)
			if first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), waits, first
}

func contentionFigure(b *bench) (*result, error) {
	r := &result{Figure: "3", Name: fmt.Sprintf("in-process contention (%d goroutines, one session file)", contenders)}
	session, err := b.newSession("contention", sessionSize)
	if err != nil {
		return r, err
	}
	var mu sync.Mutex
	barePath := filepath.Join(b.dir, "bare.lock")
	newTenure := func() holder { return &tenureHolder{session: session} }
	newMutex := func() holder { return &mutexHolder{mu: &mu, lockPath: barePath} }

	var ours, base, oursWaits, baseWaits []float64
	if _, _, err := contend(b.cfg.duration/4, newTenure); err != nil { // warm-up
		return r, err
	}
	for round := range b.cfg.rounds {
		for i := range 2 {
			isOurs := (round+i)%2 == 0
			newHolder := newMutex
			if isOurs {
				newHolder = newTenure
			}
			rate, waits, err := contend(b.cfg.duration, newHolder)
			if err != nil {
				return r, err
			}
			if isOurs {
				ours, oursWaits = append(ours, rate), append(oursWaits, waits...)
			} else {
				base, baseWaits = append(base, rate), append(baseWaits, waits...)
			}
		}
	}

	r.Ours = sample{What: "tenures per second, per round", Unit: "ops/s", Median: quantile(ours, 0.5), Samples: len(ours)}
	r.Baseline = sample{What: "sync.Mutex + bare cycle per second, per round", Unit: "ops/s", Median: quantile(base, 0.5), Samples: len(base)}
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal, r.Verdict = "throughput >= 0.8x", verdict(r.Ratio, ">=", 0.8)
	ow, bw := summarise("", "ns", oursWaits), summarise("", "ns", baseWaits)
	r.Details = []detail{
		{"longest wait, ours", ow.Max, "ns"},
		{"p99 wait, ours", quantile(oursWaits, 0.99), "ns"},
		{"median wait, ours", ow.Median, "ns"},
		{"longest wait, sync.Mutex baseline", bw.Max, "ns"},
		{"p99 wait, sync.Mutex baseline", quantile(baseWaits, 0.99), "ns"},
		{"median wait, sync.Mutex baseline", bw.Median, "ns"},
	}
	return r, nil
}

// readOnce reads the file once through a buffer the size of the library's
// content scans, hashing what it reads when h is not nil.
func readOnce(path string, h io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if h == nil {
		h = io.Discard
	}
	_, err = io.CopyBuffer(h, f, make([]byte, scanBuffer))
	return err
}

func contentFigure(b *bench) (*result, error) {
	r := &result{Figure: "6", Name: fmt.Sprintf("content verification (FingerprintContent fence cycle, unchanged %d MiB session)", b.cfg.contentMiB)}
	session, err := b.newSession("content", b.cfg.contentMiB<<20)
	if err != nil {
		return r, err
	}
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), session, sessionlock.WithFingerprintMode(sessionlock.FingerprintContent))
	if err != nil {
		return r, err
	}
	pf := sessionlock.NewPromptFence(l)
	defer pf.Close()

	ops := []func() error{
		func() error {
			if err := pf.ReleaseForPrompt(); err != nil {
				return err
			}
			return pf.Reacquire(context.Background())
		},
		func() error { return readOnce(session, nil) },
		func() error { return readOnce(session, sha256.New()) },
	}
	times := make([][]float64, len(ops))
	for round := -1; round < b.cfg.contentRounds; round++ { // round -1 warms the page cache
		for i := range ops {
			j := (i + max(round, 0)) % len(ops)
			t, err := timeOps(1, ops[j], nil)
			if err != nil {
				return r, err
			}
			if round >= 0 {
				times[j] = append(times[j], t...)
			}
		}
	}

	r.Ours = summarise("ReleaseForPrompt + Reacquire, content mode", "ns", times[0])
	r.Baseline = summarise("read the file once", "ns", times[1])
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal, r.Verdict = "none set (reported)", "INFO"
	hashed := quantile(times[2], 0.5)
	r.Details = []detail{
		{"read + SHA-256 once, median", hashed, "ns"},
		{"fence cycle / (read + SHA-256 once)", r.Ours.Median / hashed, "ratio"},
	}
	r.Notes = append(r.Notes, "a content-mode fence cycle reads and hashes the file twice: the release snapshot and the reacquire check")
	return r, nil
}
