package flapfs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
	"github.com/sessionlock/sessionlock/harness/flapfs"
	"github.com/sessionlock/sessionlock/harness/internal/testenv"
)

// Cross-process tests re-run this test binary as a child, as the root
// package's tests do: the child reads its role from childModeEnv and its
// arguments from childArgsEnv.
const (
	childModeEnv = "FLAPFS_TEST_CHILD"
	childArgsEnv = "FLAPFS_TEST_CHILD_ARGS"

	// opTimeout bounds every acquire in these tests: on a flapping file
	// system an acquire must finish promptly, not spin.
	opTimeout = 10 * time.Second

	// exitExcluded is the status of a "try" child that could not get the
	// lock because someone else held it.
	exitExcluded = 3
)

// childModes maps a role to the code the child runs; the return value is
// the exit status.
var childModes = map[string]func(args []string) int{
	// append FILE OWNER LINE: one co-tenant tenure that appends LINE and a
	// newline through Lock.Append; prints "PID GENERATION".
	"append": func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		l, err := sessionlock.AcquireSessionWriteLock(ctx, args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := l.Append([]byte(args[2] + "\n")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = l.Release()
			return 1
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%d %d\n", os.Getpid(), l.Epoch())
		return 0
	},
	// try FILE WAIT: try to acquire within WAIT. Prints "excluded OWNER"
	// and exits with exitExcluded when the wait times out, or "acquired"
	// after a clean release.
	"try": func(args []string) int {
		wait, err := time.ParseDuration(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		l, err := sessionlock.AcquireSessionWriteLock(ctx, args[0], sessionlock.WithOwner("intruder"))
		var we *sessionlock.WaitError
		if errors.Is(err, context.DeadlineExceeded) && errors.As(err, &we) {
			owner := "(unknown)"
			if we.Holder != nil {
				owner = we.Holder.Owner
			}
			fmt.Printf("excluded %s\n", owner)
			return exitExcluded
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("acquired")
		return 0
	},
}

func TestMain(m *testing.M) {
	roles.Dispatch()
	os.Exit(m.Run())
}

func skipOrFail(t *testing.T, reason string) { t.Helper(); testenv.SkipOrFail(t, reason) }

// needFUSE skips (or, in CI, fails) unless the test can mount a FUSE file
// system: root and /dev/fuse.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "mounting FUSE needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skipOrFail(t, "/dev/fuse is not available: "+err.Error())
	}
}

// mount mounts a flapfs file system over a fresh backing directory and
// unmounts it when the test ends, checking that no mount is left behind.
func mount(t *testing.T, opts flapfs.Options) *flapfs.FS {
	t.Helper()
	needFUSE(t)
	base := t.TempDir()
	backing, dir := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	require.NoError(t, os.Mkdir(backing, 0o755))
	require.NoError(t, os.Mkdir(dir, 0o755))
	fsys, err := flapfs.Mount(dir, backing, opts)
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		skipOrFail(t, "mount(2) of a FUSE file system is not permitted here: "+err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := fsys.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		if mounted(t, dir) {
			t.Errorf("%s is still mounted after Unmount", dir)
		}
	})
	return fsys
}

// mounted reports whether dir is a mount point, from /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// roles runs this test binary's child roles.
var roles = testenv.Roles{ModeEnv: childModeEnv, ArgsEnv: childArgsEnv, Modes: childModes}

// runChild runs the test binary in a role to completion and returns its
// output and exit status.
func runChild(t *testing.T, mode string, args ...string) (string, int) {
	t.Helper()
	return roles.Run(t, mode, args...)
}

// flockStatus runs util-linux flock(1) in non-blocking exclusive mode on
// path and returns its exit status: 0 when it got the lock, 1 when someone
// else holds it.
func flockStatus(t *testing.T, path string) int {
	t.Helper()
	bin, err := exec.LookPath("flock")
	if err != nil {
		skipOrFail(t, "util-linux flock(1) is not installed")
	}
	err = exec.Command(bin, "-n", "-x", path, "true").Run()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "running flock(1)")
	return ee.ExitCode()
}

// recorder is a slog handler that keeps every message, so tests can tell
// whether the lock retried or reported a lost lock.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// slogLogger returns a logger that records into rec.
func slogLogger(rec *recorder) *slog.Logger { return slog.New(rec) }

// count returns how many recorded messages contain s.
func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// Messages the lock logs when its identity check fails.
const (
	msgRetry = "lock file replaced while locking; retrying"
	msgLost  = "lock file removed or replaced during tenure"
)

// acquire takes the lock within opTimeout.
func acquire(t *testing.T, path string, opts ...sessionlock.Option) *sessionlock.Lock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, path, opts...)
	require.NoError(t, err)
	return l
}

// reacquire runs pf.Reacquire within opTimeout.
func reacquire(pf *sessionlock.PromptFence) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return pf.Reacquire(ctx)
}

// openFence acquires the lock as "controller", appends initial (if any)
// inside that tenure, and returns a fence around it, closed when the test
// ends.
func openFence(t *testing.T, path, initial string, opts ...sessionlock.Option) *sessionlock.PromptFence {
	t.Helper()
	l := acquire(t, path, append([]sessionlock.Option{sessionlock.WithOwner("controller")}, opts...)...)
	if initial != "" {
		_, err := l.Append([]byte(initial))
		require.NoError(t, err)
	}
	pf := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = pf.Close() })
	return pf
}

// openFenceWriteFile is openFence for tenures that write the initial
// content with os.WriteFile instead of Lock.Append, so that the lock's
// stat-based intrusion check of Append (stat mode) plays no part.
func openFenceWriteFile(t *testing.T, path, initial string, opts ...sessionlock.Option) *sessionlock.PromptFence {
	t.Helper()
	l := acquire(t, path, append([]sessionlock.Option{sessionlock.WithOwner("controller")}, opts...)...)
	if initial != "" {
		require.NoError(t, os.WriteFile(path, []byte(initial), 0o644))
	}
	pf := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = pf.Close() })
	return pf
}

// requireTakeover checks that err is a takeover with the given cause and
// change, and returns it.
func requireTakeover(t *testing.T, err error, cause sessionlock.Cause, change sessionlock.Change) *sessionlock.TakeoverError {
	t.Helper()
	require.Error(t, err, "expected a takeover")
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover)
	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te)
	require.Equal(t, cause, te.Cause, "cause: want %s, got %s; error: %v", cause, te.Cause, err)
	require.Equal(t, change, te.Change, "change: want %s, got %s; error: %v", change, te.Change, err)
	return te
}

// appendBytes appends s to path in one write, bypassing the lock.
func appendBytes(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// atomicReplace writes content to a temporary file beside path and renames
// it over path, as editors and atomic-write helpers do.
func atomicReplace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// statT returns the raw stat of path.
func statT(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st
}
