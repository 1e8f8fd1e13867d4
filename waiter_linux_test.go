//go:build linux

package sessionlock_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

const (
	// cancelledWaiters is how many goroutines wait and give up while
	// another process holds the lock.
	cancelledWaiters = 1000
	// threadSlack is how many OS threads above the baseline are tolerated
	// after the waiters are gone: the one blocked kernel waiter plus the
	// runtime's own.
	threadSlack = 8
	// handOffWait bounds how long a hand-off may take before the test
	// gives up; the point is that it happens without polling, not how fast.
	handOffWait = 10 * time.Second
)

// osThreads returns the process's OS thread count.
func osThreads(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// holdWithFlockTool holds the lock file with util-linux flock(1) until the
// returned function is called.
func holdWithFlockTool(t *testing.T, lockPath string) (release func()) {
	t.Helper()
	tool := needCommand(t, "flock")
	cmd := exec.Command(tool, "-x", lockPath, "-c", "echo locked; read _")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		release()
	})
	return release
}

func TestCancelledWaitersLeaveNoThreadsBehind(t *testing.T) {
	p := sessionPath(t)
	coTenant(t, p, "setup", nil)
	baseline := osThreads(t)
	release := holdWithFlockTool(t, p+".lock")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, cancelledWaiters)
	for i := 0; i < cancelledWaiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := sessionlock.AcquireSessionWriteLock(ctx, p)
			if err == nil {
				_ = l.Release()
			}
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them queue; correctness does not depend on it
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, context.Canceled)
	}
	require.LessOrEqual(t, osThreads(t), baseline+threadSlack,
		"a thousand cancelled waiters must not leave a thread each")

	// When the other process lets go, the abandoned kernel waiter drops
	// the lock again, and a new waiter gets it.
	release()
	ctx2, cancel2 := context.WithTimeout(context.Background(), handOffWait)
	defer cancel2()
	l, err := sessionlock.AcquireSessionWriteLock(ctx2, p)
	require.NoError(t, err)
	require.NoError(t, l.Release())
}

func TestCancelledHeadPassesTheKernelWaitToTheNextWaiter(t *testing.T) {
	p := sessionPath(t)
	coTenant(t, p, "setup", nil)
	release := holdWithFlockTool(t, p+".lock")

	// The first waiter reaches the head of the queue, starts the blocking
	// wait and gives up; the second one must still be served.
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := sessionlock.AcquireSessionWriteLock(first, p)
		firstErr <- err
	}()
	secondCtx, cancelSecond := context.WithTimeout(context.Background(), handOffWait)
	defer cancelSecond()
	second := make(chan error, 1)
	go func() {
		l, err := sessionlock.AcquireSessionWriteLock(secondCtx, p, sessionlock.WithOwner("second"))
		if err == nil {
			err = l.Release()
		}
		second <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancelFirst()
	require.ErrorIs(t, <-firstErr, context.Canceled)

	start := time.Now()
	release()
	require.NoError(t, <-second)
	t.Logf("second waiter served %v after the other process released", time.Since(start))
}
