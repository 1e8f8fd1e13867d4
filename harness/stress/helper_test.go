package stress_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
	"github.com/sessionlock/sessionlock/harness/internal/testenv"
	"github.com/sessionlock/sessionlock/harness/stress"
)

// Child processes are re-runs of this test binary. A harness worker gets
// its spec file in workerSpecEnv; a test's own child gets its role in
// childModeEnv and its arguments in childArgsEnv (separated by
// childArgSep).
const (
	workerSpecEnv = "SESSIONLOCK_STRESS_WORKER_SPEC"
	childModeEnv  = "SESSIONLOCK_STRESS_CHILD"
	childArgsEnv  = "SESSIONLOCK_STRESS_CHILD_ARGS"

	// opTimeout bounds every lock operation a test makes; it only turns a
	// hang into a failure and is never waited out in a passing run.
	opTimeout = 10 * time.Second
)

// childModes maps a role to the code a child runs; the return value is its
// exit status.
var childModes = map[string]func(args []string) int{
	// tenures FILE OWNER N: N tenures, each appending one line through
	// Lock.Append; prints the generation of the last.
	"tenures": func(args []string) int {
		var n int
		if _, err := fmt.Sscan(args[2], &n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var gen uint64
		for i := 0; i < n; i++ {
			l, err := acquireCtx(args[0], sessionlock.WithOwner(args[1]))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			gen = l.Epoch()
			if _, err := l.Append([]byte(fmt.Sprintf("{\"w\":%q,\"seq\":%d}\n", args[1], i+1))); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if err := l.Release(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println(gen)
		return 0
	},
	// fence FILE OWNER K: K tenures that append a line each, then a
	// controller tenure handed to a prompt fence and released for a
	// prompt; prints "released G0", waits for a line on stdin, reacquires
	// and prints "accepted G1" or "takeover CAUSE G1".
	"fence": func(args []string) int {
		var k int
		if _, err := fmt.Sscan(args[2], &k); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := 0; i < k; i++ {
			l, err := acquireCtx(args[0], sessionlock.WithOwner(args[1]))
			if err == nil {
				_, err = l.Append([]byte(fmt.Sprintf("{\"w\":%q,\"seq\":%d}\n", args[1], i+1)))
				err = errors.Join(err, l.Release())
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		l, err := acquireCtx(args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pf := sessionlock.NewPromptFence(l)
		defer pf.Close()
		if err := pf.ReleaseForPrompt(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("released %d\n", l.Epoch())
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		err = reacquire(pf)
		var te *sessionlock.TakeoverError
		switch {
		case errors.As(err, &te):
			fmt.Printf("takeover %s %d\n", te.Cause, te.Reacquired)
		case err != nil:
			fmt.Fprintln(os.Stderr, err)
			return 1
		default:
			fmt.Printf("accepted %d\n", pf.Lock().Epoch())
		}
		return 0
	},
	// hold FILE OWNER: acquire (printing "waiting" first and "held GEN"
	// once held), append a line, then wait for a line on stdin, release,
	// and print "released" or "release-error lost=BOOL ERROR".
	"hold": func(args []string) int {
		fmt.Println("waiting")
		l, err := acquireCtx(args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("held %d\n", l.Epoch())
		if _, err := l.Append([]byte(fmt.Sprintf("{\"w\":%q,\"seq\":1}\n", args[1]))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		if err := l.Release(); err != nil {
			fmt.Printf("release-error lost=%t %v\n", isLockLost(err), err)
			return 0
		}
		fmt.Println("released")
		return 0
	},
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerSpecEnv); spec != "" {
		if err := stress.RunWorker(spec); err != nil {
			fmt.Fprintln(os.Stderr, "stress worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	roles.Dispatch()
	os.Exit(m.Run())
}

// workerCommand runs a harness worker process as a re-run of this test
// binary.
func workerCommand(spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerSpecEnv+"="+spec, testenv.QuickExitEnv())
	return cmd
}

// roles runs this test binary's child roles.
var roles = testenv.Roles{ModeEnv: childModeEnv, ArgsEnv: childArgsEnv, Modes: childModes}

// child is a running re-run of the test binary in a role.
type child struct{ *testenv.Child }

// startChild starts the test binary in role mode. It is killed when the
// test ends if it is still running.
func startChild(t *testing.T, mode string, args ...string) child {
	t.Helper()
	return child{roles.Start(t, mode, args...)}
}

// readLine waits for the child's next line of output.
func (c child) readLine(t *testing.T) string {
	t.Helper()
	return c.ReadLine(t)
}

// runChild runs the test binary in a role to completion and returns its
// output; a non-zero exit fails the test.
func runChild(t *testing.T, mode string, args ...string) string {
	t.Helper()
	out, status := roles.Run(t, mode, args...)
	require.Zero(t, status, "child %s failed", mode)
	return out
}

func skipOrFail(t *testing.T, reason string) { t.Helper(); testenv.SkipOrFail(t, reason) }

func needRoot(t *testing.T) { t.Helper(); testenv.NeedRoot(t, "to mount a file system") }

func needCommand(t *testing.T, name string) string { t.Helper(); return testenv.NeedCommand(t, name) }

// mountTmpfs mounts a tmpfs of the given size (mount(8) syntax, "512k") on
// a fresh directory and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t)
	mountCmd := needCommand(t, "mount")
	umountCmd := needCommand(t, "umount")
	dir := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(dir, 0o755))
	out, err := exec.Command(mountCmd, "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		skipOrFail(t, fmt.Sprintf("cannot mount a tmpfs here: %v: %s", err, out))
	}
	t.Cleanup(func() {
		// The library keeps recently used lock files open for a moment.
		sessionlock.CloseIdleLockFiles()
		if out, err := exec.Command(umountCmd, dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command(umountCmd, "-l", dir).Run()
		}
	})
	return dir
}

// remount runs mount -o remount,OPTS on dir, retrying while the kernel
// says the file system is busy (a file open for writing blocks a remount
// read-only), up to deadline. Before each try it closes the lock files
// that the library keeps open between tenures, so a try succeeds at any
// moment when no tenure is in progress.
func remount(t *testing.T, dir, opts string, deadline time.Duration) int {
	t.Helper()
	mountCmd := needCommand(t, "mount")
	stop := time.Now().Add(deadline)
	for tries := 1; ; tries++ {
		sessionlock.CloseIdleLockFiles()
		out, err := exec.Command(mountCmd, "-o", "remount,"+opts, dir).CombinedOutput()
		if err == nil {
			return tries
		}
		if time.Now().After(stop) {
			t.Fatalf("mount -o remount,%s %s did not succeed within %v (%d tries): %v: %s", opts, dir, deadline, tries, err, out)
		}
		time.Sleep(time.Millisecond)
	}
}

func acquireCtx(path string, opts ...sessionlock.Option) (*sessionlock.Lock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return sessionlock.AcquireSessionWriteLock(ctx, path, opts...)
}

// acquire takes the lock within opTimeout and releases it at the end of
// the test if the test has not.
func acquire(t *testing.T, path string, opts ...sessionlock.Option) *sessionlock.Lock {
	t.Helper()
	l, err := acquireCtx(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release() })
	return l
}

func reacquire(pf *sessionlock.PromptFence) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return pf.Reacquire(ctx)
}

// openFence acquires path as "controller", appends line through the lock,
// and releases it for a prompt. The fence is closed when the test ends.
func openFence(t *testing.T, path, line string) *sessionlock.PromptFence {
	t.Helper()
	l := acquire(t, path, sessionlock.WithOwner("controller"))
	_, err := l.Append([]byte(line))
	require.NoError(t, err)
	pf := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = pf.Close() })
	require.NoError(t, pf.ReleaseForPrompt())
	return pf
}

// requireTakeover checks that err is a takeover and returns it.
func requireTakeover(t *testing.T, err error) *sessionlock.TakeoverError {
	t.Helper()
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover, "the fence accepted a window in which the session's history was lost")
	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te)
	return te
}

func isLockLost(err error) bool { return errors.Is(err, sessionlock.ErrLockLost) }

// isErrno reports whether err wraps errno.
func isErrno(err error, errno syscall.Errno) bool { return errors.Is(err, errno) }
