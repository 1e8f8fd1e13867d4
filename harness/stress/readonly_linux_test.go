package stress_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

const (
	// roWorkers goroutines take tenures on roSessions files while the file
	// system goes read-only under them.
	roWorkers  = 3
	roSessions = 2
	// roGapMax is the longest pause between a worker's tenures. The kernel
	// refuses to remount read-only while a file is open for writing, and a
	// tenure keeps its lock file open for writing, so the remount can only
	// succeed in a moment when no tenure is held; the pauses make such
	// moments.
	roGapMax = 8 * time.Millisecond
	// roPhase is how long the workers run before the remount, and again
	// while the file system is read-only.
	roPhase = 300 * time.Millisecond
	// roRemountDeadline bounds the remount's retries.
	roRemountDeadline = 20 * time.Second
)

// roWorker is one goroutine's record of the run.
type roWorker struct {
	mu    sync.Mutex
	acked []string
	errs  []error
}

func (w *roWorker) note(ackedLine string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ackedLine != "" {
		w.acked = append(w.acked, ackedLine)
	}
	if err != nil {
		w.errs = append(w.errs, err)
	}
}

func (w *roWorker) errors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

// A file system remounted read-only while goroutines take tenures on it:
// every operation that fails does so with a *fs.PathError that wraps
// EROFS, none panics or hangs, a fence released for a prompt cannot
// reacquire while the file system is read-only but can once it is writable
// again (and then accepts, since only co-tenants wrote), and every
// acknowledged line is in its file.
func TestReadOnlyRemountMidRun(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	files := make([]string, roSessions)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i))
	}
	fence := openFence(t, files[0], "{\"turn\":1}\n")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	workers := make([]*roWorker, roWorkers)
	for g := range workers {
		w := &roWorker{}
		workers[g] = w
		rng := rand.New(rand.NewPCG(uint64(g), 3))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				file := files[rng.IntN(len(files))]
				l, err := acquireCtx(file, sessionlock.WithOwner(fmt.Sprint("w", g)))
				var acked string
				if err == nil {
					line := fmt.Sprintf("{\"w\":%d,\"seq\":%d}\n", g, seq)
					if _, err = l.Append([]byte(line)); err == nil {
						acked = file + "\x00" + line
					}
					err = errors.Join(err, l.Release())
				}
				w.note(acked, err)
				time.Sleep(time.Duration(rng.Int64N(int64(roGapMax))))
			}
		}()
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	time.Sleep(roPhase)
	for _, w := range workers {
		require.Empty(t, w.errors(), "no errors before the remount")
	}
	tries := remount(t, dir, "ro", roRemountDeadline)
	t.Logf("remounted read-only after %d tries", tries)
	time.Sleep(roPhase)

	err := reacquire(fence)
	require.Error(t, err, "a fence cannot reacquire on a read-only file system")
	require.NotErrorIs(t, err, sessionlock.ErrSessionTakeover, "a read-only file system is no takeover")
	require.True(t, isErrno(err, syscall.EROFS), "want EROFS, got %v", err)
	st, err := sessionlock.Inspect(files[0])
	require.NoError(t, err, "Inspect only reads")
	require.Empty(t, st.LedgerError)

	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * opTimeout):
		t.Fatalf("workers did not stop within %v on a read-only file system", 2*opTimeout)
	}

	erofs := 0
	for _, w := range workers {
		for _, err := range w.errors() {
			var pe *fs.PathError
			require.ErrorAs(t, err, &pe, "%v", err)
			require.True(t, isErrno(err, syscall.EROFS), "want EROFS, got %v", err)
			erofs++
		}
	}
	require.NotZero(t, erofs, "the workers must have run into the read-only file system")

	remount(t, dir, "rw", roRemountDeadline)
	require.NoError(t, reacquire(fence), "only co-tenants wrote in the window")
	require.NoError(t, fence.Close())
	for _, w := range workers {
		for _, a := range w.acked {
			file, line, _ := strings.Cut(a, "\x00")
			content, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Contains(t, string(content), line, "an acknowledged line was lost")
		}
	}
}
