package sessionlock_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/sessionlock/sessionlock"
)

// The benchmarks below mirror the figures of cmd/sessionlock-bench, so that
// go test -bench covers them too. Each reports its cost as a multiple of a
// baseline measured inside the same benchmark (x-bare, x-mutex, x-flock),
// since on a shared machine only such ratios are stable. Figure 6, a content
// mode fence cycle on 64 MiB against one read of the file, is
// BenchmarkFenceCycle/content/64MiB (x-read).
const (
	// ratioBlocks blocks of ratioBlockOps baseline operations run before
	// and again after the timed loop; the median block is the baseline.
	ratioBlocks   = 10
	ratioBlockOps = 100

	ratioContenders   = 4    // goroutines in BenchmarkRatioContention
	ratioMutexOps     = 5000 // baseline tenures in BenchmarkRatioContention
	ratioFlockRounds  = 50   // baseline hand-offs in BenchmarkRatioHandoff
	ratioHoldMin      = time.Millisecond
	ratioHoldMax      = 20 * time.Millisecond
	ratioScaleFiles   = 100_000
	ratioScaleHeld    = 1000
	ratioChildTimeout = 30 * time.Second
)

func init() {
	// ratio-handoff KIND FILE: process B of a hand-off. On "wait" it says
	// "waiting", takes the lock (KIND sessionlock: a tenure on session
	// FILE; KIND flock: a blocking flock on lock file FILE), says
	// "acquired T" with T the wall clock in nanoseconds as it got the lock,
	// releases and says "released".
	childModes["ratio-handoff"] = func(args []string) int {
		kind, file := args[0], args[1]
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if in.Text() != "wait" {
				continue
			}
			fmt.Println("waiting")
			var release func() error
			if kind == "flock" {
				fl := flock.New(file)
				if err := fl.Lock(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
				release = fl.Unlock
			} else {
				l, err := sessionlock.AcquireSessionWriteLock(context.Background(), file)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
				release = l.Release
			}
			fmt.Println("acquired", time.Now().UnixNano())
			if err := release(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println("released")
		}
		return 0
	}
}

// ratioBareCycle is the baseline of figures 1 and 2: a bare gofrs/flock
// New + Lock + Unlock cycle on a lock file.
func ratioBareCycle(lockPath string) func() error {
	return func() error {
		fl := flock.New(lockPath)
		if err := fl.Lock(); err != nil {
			return err
		}
		return fl.Unlock()
	}
}

// ratioBlocksNs runs op in ratioBlocks blocks and appends each block's
// time per operation in nanoseconds to into.
func ratioBlocksNs(b *testing.B, op func() error, into []float64) []float64 {
	b.Helper()
	for range ratioBlocks {
		start := time.Now()
		for range ratioBlockOps {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		into = append(into, float64(time.Since(start).Nanoseconds())/ratioBlockOps)
	}
	return into
}

func ratioMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// reportBare reports the baseline blocks' median and the timed loop's cost
// per operation as a multiple of it.
func reportBare(b *testing.B, blocks []float64) {
	bare := ratioMedian(blocks)
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(bare, "bare-ns/op")
	b.ReportMetric(perOp/bare, "x-bare")
}

// BenchmarkRatioTenure is figure 1: one uncontended tenure on an existing
// 1 MiB session file, as a multiple of a bare gofrs/flock cycle (x-bare;
// goal 1.5).
func BenchmarkRatioTenure(b *testing.B) {
	p := makeSession(b, 1<<20)
	bare := ratioBareCycle(filepath.Join(b.TempDir(), "bare.lock"))
	blocks := ratioBlocksNs(b, bare, nil)
	ctx := context.Background()
	for b.Loop() {
		l, err := sessionlock.AcquireSessionWriteLock(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
	reportBare(b, ratioBlocksNs(b, bare, blocks))
}

// BenchmarkRatioFenceCycle is figure 2: ReleaseForPrompt + Reacquire on an
// unchanged 1 MiB session file in the default mode, as a multiple of a bare
// gofrs/flock cycle (x-bare; goal 2.5).
func BenchmarkRatioFenceCycle(b *testing.B) {
	p := makeSession(b, 1<<20)
	bare := ratioBareCycle(filepath.Join(b.TempDir(), "bare.lock"))
	ctx := context.Background()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	pf := sessionlock.NewPromptFence(l)
	defer pf.Close()
	blocks := ratioBlocksNs(b, bare, nil)
	for b.Loop() {
		if err := pf.ReleaseForPrompt(); err != nil {
			b.Fatal(err)
		}
		if err := pf.Reacquire(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportBare(b, ratioBlocksNs(b, bare, blocks))
}

// ratioContend runs ratioContenders goroutines that take and drop a lock n
// times in all, and returns how long that took and the longest wait for
// the lock.
func ratioContend(n int, acquire func() (release func() error, err error)) (time.Duration, time.Duration, error) {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		longest time.Duration
		first   error
	)
	start := time.Now()
	for range ratioContenders {
		wg.Go(func() {
			var mine time.Duration
			var err error
			for next.Add(1) <= int64(n) {
				t := time.Now()
				var release func() error
				if release, err = acquire(); err != nil {
					break
				}
				mine = max(mine, time.Since(t))
				if err = release(); err != nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			longest = max(longest, mine)
			if first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	return time.Since(start), longest, first
}

// BenchmarkRatioContention is figure 3: four goroutines taking tenures on
// one session file. It reports the throughput as a multiple of four
// goroutines taking a sync.Mutex-guarded bare cycle (x-mutex; goal 0.8),
// and the longest wait on each side.
func BenchmarkRatioContention(b *testing.B) {
	p := makeSession(b, 1<<20)
	barePath := filepath.Join(b.TempDir(), "bare.lock")
	var mu sync.Mutex
	mutexCycle := func() (func() error, error) {
		mu.Lock()
		fl := flock.New(barePath)
		if err := fl.Lock(); err != nil {
			mu.Unlock()
			return nil, err
		}
		return func() error {
			defer mu.Unlock()
			return fl.Unlock()
		}, nil
	}
	tenure := func() (func() error, error) {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}

	mutexTook, mutexLongest, err := ratioContend(ratioMutexOps, mutexCycle)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	took, longest, err := ratioContend(b.N, tenure)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	ours := float64(b.N) / took.Seconds()
	bare := float64(ratioMutexOps) / mutexTook.Seconds()
	b.ReportMetric(ours, "tenures/s")
	b.ReportMetric(ours/bare, "x-mutex")
	b.ReportMetric(float64(longest.Nanoseconds()), "max-wait-ns")
	b.ReportMetric(float64(mutexLongest.Nanoseconds()), "mutex-max-wait-ns")
}

// ratioChild is process B of a hand-off: this test binary in the
// ratio-handoff role.
type ratioChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	pipe *os.File
	out  *bufio.Reader
}

func startRatioChild(b *testing.B, kind, file string) *ratioChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childModeEnv+"=ratio-handoff", childArgsEnv+"="+kind+childArgSep+file)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	pipe, _ := out.(*os.File)
	return &ratioChild{cmd: cmd, in: in, pipe: pipe, out: bufio.NewReader(out)}
}

// expect reads the child's next line, which must start with word, and
// returns the rest.
func (c *ratioChild) expect(b *testing.B, word string) string {
	b.Helper()
	if c.pipe != nil {
		_ = c.pipe.SetReadDeadline(time.Now().Add(ratioChildTimeout))
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		b.Fatalf("child: waiting for %q: %v", word, err)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), word)
	if !ok {
		b.Fatalf("child: want %q, got %q", word, line)
	}
	return strings.TrimSpace(rest)
}

// handOff runs one hand-off: take the lock, let the child wait for it,
// keep it for hold, release it, and return how long after the release
// started the child had it. Both sides read the wall clock; on one machine
// it is one clock, and the command's figure 4 uses CLOCK_MONOTONIC instead.
func (c *ratioChild) handOff(b *testing.B, hold time.Duration, take func() (func() error, error)) float64 {
	b.Helper()
	release, err := take()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(c.in, "wait\n"); err != nil {
		b.Fatal(err)
	}
	c.expect(b, "waiting")
	time.Sleep(hold)
	t0 := time.Now().UnixNano()
	if err := release(); err != nil {
		b.Fatal(err)
	}
	t1, err := strconv.ParseInt(c.expect(b, "acquired"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	c.expect(b, "released")
	return float64(t1 - t0)
}

// BenchmarkRatioHandoff is figure 4: the latency from this process
// starting Release to a waiting AcquireSessionWriteLock in another process
// returning. ns/op is the median latency, not the time per round (which is
// mostly the random hold); x-flock is it as a multiple of a blocking flock
// hand-off between the same two kinds of process (goal 2).
func BenchmarkRatioHandoff(b *testing.B) {
	p := makeSession(b, 1<<20)
	raw := filepath.Join(b.TempDir(), "raw.lock")
	ours := startRatioChild(b, "sessionlock", p)
	kernel := startRatioChild(b, "flock", raw)
	rng := rand.New(rand.NewPCG(4, 4))
	hold := func() time.Duration {
		return ratioHoldMin + time.Duration(rng.Int64N(int64(ratioHoldMax-ratioHoldMin)+1))
	}
	takeFlock := func() (func() error, error) {
		fl := flock.New(raw)
		if err := fl.Lock(); err != nil {
			return nil, err
		}
		return fl.Unlock, nil
	}
	takeOurs := func() (func() error, error) {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}

	var flockLat, oursLat []float64
	for range ratioFlockRounds {
		flockLat = append(flockLat, kernel.handOff(b, hold(), takeFlock))
	}
	for b.Loop() {
		oursLat = append(oursLat, ours.handOff(b, hold(), takeOurs))
	}
	median := ratioMedian(oursLat)
	slices.Sort(oursLat)
	b.ReportMetric(median, "ns/op")
	b.ReportMetric(oursLat[len(oursLat)*9/10], "p90-ns")
	b.ReportMetric(ratioMedian(flockLat), "flock-ns")
	b.ReportMetric(median/ratioMedian(flockLat), "x-flock")
}

// ratioFDs counts this process's open descriptors, or returns -1 where
// /proc/self/fd does not exist.
func ratioFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// ratioHeap is the live heap after two full collections.
func ratioHeap() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}

// BenchmarkRatioScale is figure 5: tenures on distinct session files one
// after another (up to 100,000, then round again), then 1,000 held at once.
// It reports the heap left behind per session (residue-B/session, which
// should be 0), the heap and descriptors per held lock, and the heap per
// held lock as a multiple of a held bare gofrs/flock lock (x-bare-B).
// ratioIdleSettle is how long BenchmarkRatioScale waits for the lock files
// that the library keeps open between tenures to close.
const ratioIdleSettle = time.Second

func BenchmarkRatioScale(b *testing.B) {
	dir := b.TempDir()
	paths := make([]string, ratioScaleFiles)
	line := []byte(`{"role":"user","content":"hello"}` + "\n")
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("s%06d.jsonl", i))
		if err := os.WriteFile(paths[i], line, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	locks := make([]*sessionlock.Lock, ratioScaleHeld)
	flocks := make([]*flock.Flock, ratioScaleHeld)
	ctx := context.Background()

	fds0, heap0 := ratioFDs(), ratioHeap()
	i := 0
	for b.Loop() {
		l, err := sessionlock.AcquireSessionWriteLock(ctx, paths[i%len(paths)])
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	// Recently used lock files stay open for half a second; count after.
	time.Sleep(ratioIdleSettle)
	fds1, heap1 := ratioFDs(), ratioHeap()

	for i := range locks {
		l, err := sessionlock.AcquireSessionWriteLock(ctx, paths[i])
		if err != nil {
			b.Fatal(err)
		}
		locks[i] = l
	}
	fdsHeld, heapHeld := ratioFDs(), ratioHeap()
	for i, l := range locks {
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
		locks[i] = nil
	}
	time.Sleep(ratioIdleSettle)
	fds2, heap2 := ratioFDs(), ratioHeap()
	for i := range flocks {
		flocks[i] = flock.New(paths[i] + ".lock")
		if err := flocks[i].Lock(); err != nil {
			b.Fatal(err)
		}
	}
	heapBare := ratioHeap()
	for i, fl := range flocks {
		if err := fl.Unlock(); err != nil {
			b.Fatal(err)
		}
		flocks[i] = nil
	}
	runtime.KeepAlive(paths)

	perHeld := (heapHeld - heap1) / ratioScaleHeld
	b.ReportMetric((heap1-heap0)/float64(min(b.N, len(paths))), "residue-B/session")
	b.ReportMetric(perHeld, "B/held-lock")
	b.ReportMetric(perHeld/((heapBare-heap2)/ratioScaleHeld), "x-bare-B")
	if fds0 >= 0 {
		b.ReportMetric(float64(fdsHeld-fds1)/ratioScaleHeld, "fds/held-lock")
		b.ReportMetric(float64(fds2-fds0), "fds-left")
	}
}
