package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/gofrs/flock"

	"github.com/sessionlock/sessionlock"
)

// heapAllowance is how far the heap after a GC may end above where it
// started for figure 5 to pass: a small constant, less than one byte per
// session at the default 100,000 sessions.
const heapAllowance = 64 << 10

// idleSettle is how long figure 5 waits after releasing before it counts
// descriptors: the library keeps a recently used session's lock file open
// for half a second (at most 64 of them), then closes it.
const idleSettle = time.Second

// resources is what figure 5 watches: descriptors, the live heap after a
// full collection, and goroutines.
type resources struct {
	fds, goroutines int
	heap            uint64
}

func measureResources() resources {
	// Two collections: the first may leave objects that finalizers or
	// sync.Pool cleanup free only in the next.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resources{fds: openFiles(), goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

// heapGrowth is how many bytes the heap grew from a to b (negative when it
// shrank).
func heapGrowth(a, b resources) float64 { return float64(b.heap) - float64(a.heap) }

func scaleFigure(b *bench) (*result, error) {
	n, held := b.cfg.sessions, min(b.cfg.held, b.cfg.sessions)
	r := &result{Figure: "5", Name: fmt.Sprintf("scale (%d distinct sessions one after another, then %d held at once)", n, held)}
	dir, err := os.MkdirTemp(b.dir, "scale-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	paths := make([]string, n)
	line := []byte(`{"role":"user","content":"hello"}` + "\n")
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("s%06d.jsonl", i))
		if err := os.WriteFile(paths[i], line, 0o644); err != nil {
			return r, err
		}
	}
	locks := make([]*sessionlock.Lock, held)
	flocks := make([]*flock.Flock, held)

	// One after another.
	start := measureResources()
	began := time.Now()
	for _, p := range paths {
		if err := tenure(p)(); err != nil {
			return r, err
		}
	}
	perTenure := float64(time.Since(began).Nanoseconds()) / float64(n)
	idleSeq := measureResources()
	time.Sleep(idleSettle)
	afterSeq := measureResources()

	// Held at once.
	for i := range locks {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), paths[i])
		if err != nil {
			return r, err
		}
		locks[i] = l
	}
	holding := measureResources()
	for i, l := range locks {
		if err := l.Release(); err != nil {
			return r, err
		}
		locks[i] = nil
	}
	idleHeld := measureResources()
	time.Sleep(idleSettle)
	afterHeld := measureResources()

	// The baseline for a held lock: bare gofrs/flock locks on the same
	// lock files.
	for i := range flocks {
		fl := flock.New(paths[i] + ".lock")
		if err := fl.Lock(); err != nil {
			return r, err
		}
		flocks[i] = fl
	}
	holdingBare := measureResources()
	for i, fl := range flocks {
		if err := fl.Unlock(); err != nil {
			return r, err
		}
		flocks[i] = nil
	}

	end := measureResources()
	// The paths and the slots were there at the start; keep them for every
	// measurement, or their collection would pass for a smaller heap.
	runtime.KeepAlive(paths)
	runtime.KeepAlive(locks)
	runtime.KeepAlive(flocks)
	r.Ours = sample{What: "live heap after everything was released, after GC", Unit: "bytes", Median: float64(end.heap), Samples: 1}
	r.Baseline = sample{What: "live heap before the first session, after GC", Unit: "bytes", Median: float64(start.heap), Samples: 1}
	r.Ratio = r.Ours.Median / r.Baseline.Median
	r.Goal = fmt.Sprintf("descriptors back to baseline, heap within +%d KiB", heapAllowance>>10)
	r.Verdict = "PASS"
	for _, s := range []resources{afterSeq, afterHeld, end} {
		if s.fds != start.fds || heapGrowth(start, s) > heapAllowance {
			r.Verdict = "MISS"
		}
	}

	perHeld := func(field func(resources) float64, from, to resources) float64 {
		return (field(to) - field(from)) / float64(held)
	}
	fds := func(s resources) float64 { return float64(s.fds) }
	heap := func(s resources) float64 { return float64(s.heap) }
	oursBytes, bareBytes := perHeld(heap, afterSeq, holding), perHeld(heap, afterHeld, holdingBare)
	r.Details = []detail{
		{"descriptors before", fds(start), "count"},
		{fmt.Sprintf("descriptors right after %d sessions one after another (idle lock files still open)", n), fds(idleSeq), "count"},
		{fmt.Sprintf("descriptors %v after %d sessions one after another", idleSettle, n), fds(afterSeq), "count"},
		{fmt.Sprintf("descriptors while %d locks are held", held), fds(holding), "count"},
		{"descriptors right after releasing them (idle lock files still open)", fds(idleHeld), "count"},
		{fmt.Sprintf("descriptors %v after releasing them", idleSettle), fds(afterHeld), "count"},
		{"heap growth after the sessions one after another", heapGrowth(start, afterSeq), "bytes"},
		{"heap growth per session one after another", heapGrowth(start, afterSeq) / float64(n), "bytes"},
		{"heap growth after releasing the held locks", heapGrowth(start, afterHeld), "bytes"},
		{"heap bytes per held lock, ours", oursBytes, "bytes"},
		{"heap bytes per held lock, bare gofrs/flock", bareBytes, "bytes"},
		{"heap per held lock, ours / bare", oursBytes / bareBytes, "ratio"},
		{"descriptors per held lock, ours", perHeld(fds, afterSeq, holding), "count"},
		{"descriptors per held lock, bare gofrs/flock", perHeld(fds, afterHeld, holdingBare), "count"},
		{"goroutines before", float64(start.goroutines), "count"},
		{"goroutines after", float64(end.goroutines), "count"},
		{"time per sequential tenure (first tenure of each session)", perTenure, "ns"},
	}
	return r, nil
}
