//go:build linux

package sessionlock_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
)

// Cross-process tests: the lock against util-linux flock(1), against other
// processes that use this package (re-runs of the test binary), against
// ordinary tools that write the session file without the lock, against a
// holder killed mid-tenure, and as an unprivileged user.
//
// Every identifier at package level in this file starts with xp, so that it
// cannot collide with helpers in the package's other test files.

const (
	// xpBusyDeadline is how long an acquire waits for a lock that is known
	// to be held by someone else before it must give up.
	xpBusyDeadline = 200 * time.Millisecond
	// xpGenerous bounds operations that should finish at once; it only
	// turns a hang into a failure and is never waited out in a passing run.
	xpGenerous = 10 * time.Second
	// xpPromptly is the bound for "returned well before the deadline" when
	// the lock's previous holder is dead: the kernel has already dropped its
	// flock, so the acquire must not wait for anything.
	xpPromptly = xpGenerous / 2
	// xpFlockWaitSeconds is the -w timeout given to a blocking flock(1);
	// it must outlast the time the test takes to release the lock.
	xpFlockWaitSeconds = "5"
	// xpPollInterval is how often the test re-reads /proc/locks while it
	// waits for a process to appear there as a blocked waiter.
	xpPollInterval = 2 * time.Millisecond
	// xpWaitDelay bounds how long waiting for an exited tool may block on
	// output pipes that its children still hold open.
	xpWaitDelay = time.Second

	// xpNobody is the uid and gid of the unprivileged user.
	xpNobody = 65534
)

// xpInitialLines is the session file content written under the lock before
// a prompt window opens.
var xpInitialLines = []string{
	`{"role":"user","content":"hello"}`,
	`{"role":"assistant","content":"hi"}`,
	`{"role":"user","content":"what time is it?"}`,
}

func init() {
	// xp-report FILE OWNER: try once to acquire the lock (bounded by
	// xpGenerous) and print an xpAcquireReport as JSON. Exits 0 whatever
	// the outcome; the parent judges the report.
	childModes["xp-report"] = func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
		defer cancel()
		rep := xpAcquireReport{UID: os.Geteuid()}
		l, err := sessionlock.AcquireSessionWriteLock(ctx, args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			rep.Error = err.Error()
			rep.Permission = errors.Is(err, fs.ErrPermission)
			var pe *fs.PathError
			if errors.As(err, &pe) {
				rep.PathErrorPath = pe.Path
			}
		} else {
			rep.Acquired = true
			rep.Epoch = l.Epoch()
			if err := l.Release(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}

	// xp-controller FILE OWNER LINE: a second controller in its own
	// process: acquire, append LINE, hand the lock to a fence, release it
	// for a prompt, reacquire and close. Prints "ok FIRST LAST" (the
	// generations of its first and last tenures), or "takeover ERROR" if
	// its own fence saw one.
	childModes["xp-controller"] = func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
		defer cancel()
		l, err := sessionlock.AcquireSessionWriteLock(ctx, args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := appendLine(args[0], args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		first := l.Epoch()
		fence := sessionlock.NewPromptFence(l)
		defer fence.Close()
		if err := fence.ReleaseForPrompt(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := fence.Reacquire(ctx); err != nil {
			if errors.Is(err, sessionlock.ErrSessionTakeover) {
				fmt.Printf("takeover %s\n", err)
				return 0
			}
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		last := fence.Lock().Epoch()
		if err := fence.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("ok %d %d\n", first, last)
		return 0
	}
}

// xpAcquireReport is what the xp-report child says about its attempt.
type xpAcquireReport struct {
	UID           int    `json:"uid"`
	Acquired      bool   `json:"acquired"`
	Epoch         uint64 `json:"epoch,omitempty"`
	Error         string `json:"error,omitempty"`
	Permission    bool   `json:"permission,omitempty"`
	PathErrorPath string `json:"path_error_path,omitempty"`
}

// ---------------------------------------------------------------------------
// Helpers

// xpProc is an external tool started by a test, with its exit watched in
// the background so a test can ask "has it finished yet?" without blocking.
type xpProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	done   chan struct{}
	err    error         // valid once done is closed
	output *xpSyncBuffer // the tool's stderr
}

// xpStartTool starts name with args. Its stdout is readable line by line
// through readLine; its stderr is kept for failure messages. The process is
// killed at the end of the test if it is still running.
func xpStartTool(t *testing.T, name string, args ...string) *xpProc {
	t.Helper()
	cmd := exec.Command(name, args...)
	// Its own process group, so the end of the test reaches the tool's
	// children too (flock -c runs a shell, which runs cat); WaitDelay stops
	// Wait from waiting forever on a grandchild that kept stderr open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = xpWaitDelay
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = w
	p := &xpProc{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(r), done: make(chan struct{}), output: &xpSyncBuffer{}}
	cmd.Stderr = p.output
	require.NoError(t, cmd.Start(), "starting %s", name)
	require.NoError(t, w.Close())
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		_ = r.Close()
	})
	return p
}

// xpSyncBuffer collects a tool's stderr. exec copies into it from its own
// goroutine while the test may read it for a failure message.
type xpSyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *xpSyncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *xpSyncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// readLine waits for the tool's next line of output.
func (p *xpProc) readLine(t *testing.T) string {
	t.Helper()
	return readLineWithin(t, p.stdout, xpGenerous, p.cmd.Path)
}

// exited reports whether the tool has finished, without waiting.
func (p *xpProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitStatus closes the tool's stdin, waits for it to finish and returns
// its exit status.
func (p *xpProc) exitStatus(t *testing.T) int {
	t.Helper()
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(xpGenerous):
		t.Fatalf("%s did not exit within %v", p.cmd.Path, xpGenerous)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, p.err, &ee, "%s: stderr: %s", p.cmd.Path, p.output.String())
	return ee.ExitCode()
}

// xpRunTool runs an external tool to completion and returns its exit status.
func xpRunTool(t *testing.T, name string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = xpWaitDelay
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "%s %q did not finish within %v", name, args, xpGenerous)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s %q: %s", name, args, out)
	return ee.ExitCode()
}

// xpMustRunTool runs an external tool and fails the test unless it exits 0.
func xpMustRunTool(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = xpWaitDelay
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %q: %s", name, args, out)
}

// xpCoTenant is one finished co-tenant process: its pid and the generation
// its tenure got.
type xpCoTenant struct {
	Owner string
	PID   int
	Epoch uint64
}

// xpRunCoTenant runs the "append" child role (one tenure that appends
// line) to completion and returns its pid and generation.
func xpRunCoTenant(t *testing.T, file, owner, line string) xpCoTenant {
	t.Helper()
	c := startChild(t, "append", file, owner, line)
	out, err := io.ReadAll(c.stdout)
	require.NoError(t, err)
	require.Equal(t, 0, c.wait(t), "co-tenant %q failed", owner)
	epoch, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	require.NoError(t, err, "co-tenant %q printed %q, want its epoch", owner, out)
	return xpCoTenant{Owner: owner, PID: c.cmd.Process.Pid, Epoch: epoch}
}

// xpStartHolder starts the "hold" child role and waits until it holds the
// lock. It returns the child and the generation of its tenure.
func xpStartHolder(t *testing.T, file, owner, line string) (*child, uint64) {
	t.Helper()
	c := startChild(t, "hold", file, owner, line)
	msg := c.readLine(t)
	var gen uint64
	_, err := fmt.Sscanf(msg, "held %d", &gen)
	require.NoError(t, err, "holder printed %q, want \"held N\"", msg)
	return c, gen
}

// xpAcquire takes the lock in this process, bounded by xpGenerous, and
// releases it at the end of the test if the test has not.
func xpAcquire(t *testing.T, file, owner string) *sessionlock.Lock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner(owner))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release() })
	return l
}

// xpReleasedFence is a controller's fence, released for a prompt.
type xpReleasedFence struct {
	*sessionlock.PromptFence
	// Released is the generation of the controller's tenure before the
	// prompt.
	Released uint64
}

// xpOpenWindow acquires the lock as "controller", writes lines to the
// session file under it, hands the lock to a prompt fence and releases it
// for a prompt. The fence is closed at the end of the test.
func xpOpenWindow(t *testing.T, file string, lines []string) xpReleasedFence {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner("controller"))
	require.NoError(t, err)
	for _, line := range lines {
		require.NoError(t, appendLine(file, line))
	}
	fence := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = fence.Close() })
	require.NoError(t, fence.ReleaseForPrompt())
	return xpReleasedFence{PromptFence: fence, Released: l.Epoch()}
}

// reacquire calls Reacquire bounded by xpGenerous.
func (f xpReleasedFence) reacquire(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	return f.Reacquire(ctx)
}

// xpRequireTakeover checks that err is a takeover with the given cause and
// change, and returns it for further checks.
func xpRequireTakeover(t *testing.T, err error, cause sessionlock.Cause, change sessionlock.Change) *sessionlock.TakeoverError {
	t.Helper()
	require.Error(t, err, "Reacquire accepted a window that must be a takeover")
	require.ErrorIs(t, err, sessionlock.ErrSessionTakeover)
	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te)
	require.Equal(t, cause, te.Cause, "cause; error: %v", err)
	require.Equal(t, change, te.Change, "change; error: %v", err)
	return te
}

// xpWaitBlockedOnFlock waits until process pid shows in /proc/locks as a
// waiter blocked on an exclusive flock of the file at lockPath. That is the
// kernel's own word that the process reached flock(2) and is waiting, so
// the test needs no sleep to "give it time".
func xpWaitBlockedOnFlock(t *testing.T, pid int, lockPath string) {
	t.Helper()
	st, err := os.Stat(lockPath)
	require.NoError(t, err)
	ino := st.Sys().(*syscall.Stat_t).Ino
	inoSuffix := ":" + strconv.FormatUint(ino, 10)
	deadline := time.Now().Add(xpGenerous)
	for {
		raw, err := os.ReadFile("/proc/locks")
		require.NoError(t, err)
		for _, line := range strings.Split(string(raw), "\n") {
			// "7: -> FLOCK  ADVISORY  WRITE 4242 fe:00:123 0 EOF"
			f := strings.Fields(line)
			if len(f) >= 7 && f[1] == "->" && f[2] == "FLOCK" && f[4] == "WRITE" &&
				f[5] == strconv.Itoa(pid) && strings.HasSuffix(f[6], inoSuffix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never blocked on the flock of %s within %v; /proc/locks:\n%s", pid, lockPath, xpGenerous, raw)
		}
		time.Sleep(xpPollInterval)
	}
}

// xpQuickChildExit makes the test binary's children exit as soon as they
// are done. Under -race, the race runtime sleeps for a second at exit
// (GORACE atexit_sleep_ms, default 1000) so that a child would cost a
// second each; children are waited for, so that sleep only slows tests.
func xpQuickChildExit(t *testing.T) {
	t.Helper()
	t.Setenv("GORACE", xpQuickExitGORACE())
}

func xpQuickExitGORACE() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}

// xpStartFlockHolder starts util-linux flock(1) holding an exclusive lock
// on lockPath until its stdin closes, and waits until it holds it.
func xpStartFlockHolder(t *testing.T, lockPath string) *xpProc {
	t.Helper()
	p := xpStartTool(t, needCommand(t, "flock"), "-x", lockPath, "-c", "echo locked; cat >/dev/null")
	require.Equal(t, "locked", p.readLine(t))
	return p
}

// ---------------------------------------------------------------------------
// 1 and 2: the lock and util-linux flock(1) exclude each other.

func TestFlockToolHoldingTheLockFileMakesAcquireTimeOutWithHolderUnknown(t *testing.T) {
	tests := []struct {
		name string
		// prepare runs before flock(1) takes the lock.
		prepare func(t *testing.T, file string)
	}{
		{
			name:    "lock file created by flock(1), no ledger",
			prepare: func(*testing.T, string) {},
		},
		{
			name: "ledger left by a released tenure, no open tenure",
			prepare: func(t *testing.T, file string) {
				require.NoError(t, xpAcquire(t, file, "earlier").Release())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sessionPath(t)
			lockPath := file + ".lock"
			tt.prepare(t, file)

			holder := xpStartFlockHolder(t, lockPath)

			ctx, cancel := context.WithTimeout(context.Background(), xpBusyDeadline)
			defer cancel()
			l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner("controller"))
			if l != nil {
				_ = l.Release()
			}
			require.Error(t, err, "acquired a lock that flock(1) holds")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var we *sessionlock.WaitError
			require.ErrorAs(t, err, &we)
			require.Nil(t, we.Holder, "flock(1) keeps no ledger, so no holder can be named; got %v", we.Holder)
			require.Contains(t, we.Error(), "holder unknown")

			require.Equal(t, 0, holder.exitStatus(t), "flock(1): %s", holder.output)

			l = xpAcquire(t, file, "controller")
			require.NotZero(t, l.Epoch())
			require.NoError(t, l.Release())
		})
	}
}

func TestHeldLockMakesFlockToolFailWithoutWaitingAndSucceedAfterRelease(t *testing.T) {
	flockCmd := needCommand(t, "flock")
	file := sessionPath(t)
	l := xpAcquire(t, file, "controller")

	require.Equal(t, 1, xpRunTool(t, flockCmd, "-n", "-x", l.LockFile(), "true"),
		"flock -n must report the lock busy (status 1) while we hold it")

	require.NoError(t, l.Release())
	require.Equal(t, 0, xpRunTool(t, flockCmd, "-n", "-x", l.LockFile(), "true"),
		"flock -n must get the lock once we released it")
}

func TestHeldLockBlocksWaitingFlockToolUntilRelease(t *testing.T) {
	flockCmd := needCommand(t, "flock")
	file := sessionPath(t)
	l := xpAcquire(t, file, "controller")

	waiter := xpStartTool(t, flockCmd, "-w", xpFlockWaitSeconds, "-x", l.LockFile(), "true")
	xpWaitBlockedOnFlock(t, waiter.cmd.Process.Pid, l.LockFile())
	require.False(t, waiter.exited(), "flock -w finished while we held the lock: %s", waiter.output)

	require.NoError(t, l.Release())
	require.Equal(t, 0, waiter.exitStatus(t), "flock -w must get the lock after release: %s", waiter.output)
}

// The lock file stays open in this process between tenures. If mv(1)
// replaces it meanwhile, the next tenure must lock the file now at the
// path, not the one it kept open: flock(1) on the path must find it busy.
func TestLockFileReplacedByMvBetweenTenuresIsReopened(t *testing.T) {
	flockCmd, mv := needCommand(t, "flock"), needCommand(t, "mv")
	file := sessionPath(t)
	first := xpAcquire(t, file, "controller")
	require.NoError(t, first.Release())

	replacement := first.LockFile() + ".new"
	require.NoError(t, os.WriteFile(replacement, nil, 0o644))
	xpMustRunTool(t, mv, "-f", replacement, first.LockFile())

	l := xpAcquire(t, file, "controller")
	require.Equal(t, 1, xpRunTool(t, flockCmd, "-n", "-x", l.LockFile(), "true"),
		"flock -n on the replacement must find it locked")
	require.NoError(t, l.Release())
	require.Equal(t, 0, xpRunTool(t, flockCmd, "-n", "-x", l.LockFile(), "true"))
}

// ---------------------------------------------------------------------------
// 3: a waiter in one process learns who holds the lock in another.

func TestWaitErrorNamesHolderInAnotherProcessFromLedger(t *testing.T) {
	xpQuickChildExit(t)
	file := sessionPath(t)
	holder, gen := xpStartHolder(t, file, "cron", "")

	ctx, cancel := context.WithTimeout(context.Background(), xpBusyDeadline)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner("controller"))
	if l != nil {
		_ = l.Release()
	}
	require.Error(t, err, "acquired a lock that another process holds")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var we *sessionlock.WaitError
	require.ErrorAs(t, err, &we)
	require.NotNil(t, we.Holder, "the ledger names the holder; error: %v", err)
	require.Equal(t, "cron", we.Holder.Owner)
	require.Equal(t, holder.cmd.Process.Pid, we.Holder.PID)
	require.Equal(t, gen, we.Generation)
	require.Contains(t, we.Error(), `"cron"`)
	require.Contains(t, we.Error(), strconv.Itoa(holder.cmd.Process.Pid))

	require.Equal(t, 0, holder.wait(t), "holder must release normally")
}

// ---------------------------------------------------------------------------
// 4: co-tenants in other processes are accepted and named.

func TestCoTenantsInOtherProcessesAreAcceptedAndNamedInWindow(t *testing.T) {
	xpQuickChildExit(t)
	tests := []struct {
		name   string
		owners []string
	}{
		{name: "one heartbeat", owners: []string{"heartbeat"}},
		{name: "five sequential co-tenants", owners: []string{"heartbeat", "cron", "ingress", "mirror", "plugin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sessionPath(t)
			fence := xpOpenWindow(t, file, xpInitialLines)

			var ran []xpCoTenant
			for i, owner := range tt.owners {
				ran = append(ran, xpRunCoTenant(t, file, owner, fmt.Sprintf(`{"from":%q,"n":%d}`, owner, i)))
			}

			require.NoError(t, fence.reacquire(t), "co-tenant writes under the lock are not a takeover")
			w := fence.Window()
			require.Equal(t, uint64(len(tt.owners)+1), w.Delta())
			require.Equal(t, fence.Released, w.Released)
			require.Zero(t, w.Unrecorded)
			require.Len(t, w.Tenures, len(ran))
			for i, want := range ran {
				got := w.Tenures[i]
				require.Equal(t, want.Owner, got.Owner, "tenure %d", i)
				require.Equal(t, want.PID, got.PID, "tenure %d", i)
				require.Equal(t, want.Epoch, got.Generation, "tenure %d", i)
				require.True(t, got.Wrote, "tenure %d appended a line", i)
				require.False(t, got.Died, "tenure %d", i)
			}
			require.Len(t, w.Writers(), len(ran))

			content, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Equal(t, len(xpInitialLines)+len(ran), strings.Count(string(content), "\n"), "no acknowledged line is lost")
		})
	}
}

// ---------------------------------------------------------------------------
// 5 and 6: writes that bypass the lock, made by real tools, are takeovers.

func TestLockBypassingWritesByRealToolsAreTakeovers(t *testing.T) {
	bash := needCommand(t, "bash")
	tests := []struct {
		name string
		// initial says whether the session file has content at release.
		initial bool
		// tools are the external programs needed (skipped if missing).
		tools []string
		// bypass changes the session file without the lock.
		bypass func(t *testing.T, file string)
		want   sessionlock.Change
	}{
		{
			name:    "bash append",
			initial: true,
			bypass: func(t *testing.T, file string) {
				xpMustRunTool(t, bash, "-c", `echo bypass >> "$1"`, "bash", file)
			},
			want: sessionlock.Appended,
		},
		{
			name:    "truncate -s 3",
			initial: true,
			tools:   []string{"truncate"},
			bypass: func(t *testing.T, file string) {
				xpMustRunTool(t, "truncate", "-s", "3", file)
			},
			want: sessionlock.Truncated,
		},
		{
			name:    "same-size dd rewrite with mtime restored by touch",
			initial: true,
			tools:   []string{"dd", "touch"},
			bypass: func(t *testing.T, file string) {
				before, err := os.Stat(file)
				require.NoError(t, err)
				mtime := before.ModTime()
				xpMustRunTool(t, "dd", "if=/dev/zero", "of="+file, "bs=4", "count=1", "conv=notrunc", "status=none")
				xpMustRunTool(t, "touch", "-d", fmt.Sprintf("@%d.%09d", mtime.Unix(), mtime.Nanosecond()), file)

				after, err := os.Stat(file)
				require.NoError(t, err)
				require.Equal(t, before.Size(), after.Size(), "setup: the rewrite must keep the size")
				require.True(t, mtime.Equal(after.ModTime()), "setup: touch must restore the mtime exactly (%v, now %v)", mtime, after.ModTime())
			},
			want: sessionlock.Rewritten,
		},
		{
			name:    "bash temp file and mv over it",
			initial: true,
			tools:   []string{"mv"},
			bypass: func(t *testing.T, file string) {
				xpMustRunTool(t, bash, "-c", `printf '{"replaced":true}\n' > "$1.tmp" && mv "$1.tmp" "$1"`, "bash", file)
			},
			want: sessionlock.Replaced,
		},
		{
			name:    "rm",
			initial: true,
			tools:   []string{"rm"},
			bypass: func(t *testing.T, file string) {
				xpMustRunTool(t, "rm", file)
			},
			want: sessionlock.Deleted,
		},
		{
			name:    "bash creates the file that did not exist at release",
			initial: false,
			bypass: func(t *testing.T, file string) {
				xpMustRunTool(t, bash, "-c", `echo created > "$1"`, "bash", file)
			},
			want: sessionlock.Created,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tool := range tt.tools {
				needCommand(t, tool)
			}
			file := sessionPath(t)
			var lines []string
			if tt.initial {
				lines = xpInitialLines
			}
			fence := xpOpenWindow(t, file, lines)

			tt.bypass(t, file)

			te := xpRequireTakeover(t, fence.reacquire(t), sessionlock.CauseBypass, tt.want)
			require.Equal(t, fence.Released, te.Released)
			require.Equal(t, fence.Released+1, te.Reacquired)
			require.Equal(t, fence.Released+1, te.BreakGeneration, "the reacquiring tenure found the break")
			require.True(t, fence.TakeoverDetected())
		})
	}
}

func TestBypassBetweenCrossProcessCoTenantsIsStillATakeover(t *testing.T) {
	xpQuickChildExit(t)
	bash := needCommand(t, "bash")
	file := sessionPath(t)
	fence := xpOpenWindow(t, file, xpInitialLines)

	before := xpRunCoTenant(t, file, "heartbeat", `{"from":"heartbeat"}`)
	xpMustRunTool(t, bash, "-c", `echo bypass >> "$1"`, "bash", file)
	after := xpRunCoTenant(t, file, "cron", `{"from":"cron"}`)
	require.Equal(t, before.Epoch+1, after.Epoch)

	te := xpRequireTakeover(t, fence.reacquire(t), sessionlock.CauseBypass, sessionlock.Appended)
	require.Equal(t, after.Epoch, te.BreakGeneration, "the break lies between the two co-tenants")
	require.Equal(t, fence.Released, te.Released)
	require.Equal(t, after.Epoch+1, te.Reacquired)
}

func TestLaterControllerDoesNotLaunderBreakSeenByEarlierFence(t *testing.T) {
	xpQuickChildExit(t)
	bash := needCommand(t, "bash")
	tests := []struct {
		name string
		// secondController runs a full fence cycle (acquire, append,
		// release for prompt, reacquire, close) after the bypass and
		// returns the generation of its first tenure.
		secondController func(t *testing.T, file string) uint64
	}{
		{
			name: "second controller in this process",
			secondController: func(t *testing.T, file string) uint64 {
				l := xpAcquire(t, file, "controller-2")
				require.NoError(t, appendLine(file, `{"from":"controller-2"}`))
				first := l.Epoch()
				f2 := sessionlock.NewPromptFence(l)
				require.NoError(t, f2.ReleaseForPrompt())
				ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
				defer cancel()
				require.NoError(t, f2.Reacquire(ctx), "the second controller's own window is clean")
				require.NoError(t, f2.Close())
				return first
			},
		},
		{
			name: "second controller in another process",
			secondController: func(t *testing.T, file string) uint64 {
				out := runChild(t, "xp-controller", file, "controller-2", `{"from":"controller-2"}`)
				var first, last uint64
				_, err := fmt.Sscanf(out, "ok %d %d", &first, &last)
				require.NoError(t, err, "second controller printed %q, want \"ok FIRST LAST\"", out)
				require.Equal(t, first+1, last)
				return first
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sessionPath(t)
			fence := xpOpenWindow(t, file, xpInitialLines)

			xpMustRunTool(t, bash, "-c", `echo bypass >> "$1"`, "bash", file)
			second := tt.secondController(t, file)
			require.Equal(t, fence.Released+1, second)

			te := xpRequireTakeover(t, fence.reacquire(t), sessionlock.CauseBypass, sessionlock.Appended)
			require.Equal(t, second, te.BreakGeneration, "the break found by the second controller's first tenure")
			require.Equal(t, fence.Released, te.Released)
		})
	}
}

func TestFlockToolWrapperThatWritesIsTreatedAsLockBypassing(t *testing.T) {
	flockCmd := needCommand(t, "flock")
	bash := needCommand(t, "bash")
	tests := []struct {
		name     string
		command  string // run by bash under flock(1); $1 is the session file
		takeover bool
	}{
		{name: "appends under flock(1)", command: `echo x >> "$1"`, takeover: true},
		{name: "reads only under flock(1)", command: `cat "$1" > /dev/null`, takeover: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sessionPath(t)
			fence := xpOpenWindow(t, file, xpInitialLines)

			xpMustRunTool(t, flockCmd, "-x", file+".lock", bash, "-c", tt.command, "bash", file)

			err := fence.reacquire(t)
			if !tt.takeover {
				require.NoError(t, err, "taking the file lock without writing changes nothing")
				require.Equal(t, uint64(1), fence.Window().Delta())
				return
			}
			te := xpRequireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Appended)
			require.Equal(t, fence.Released+1, te.BreakGeneration)
		})
	}
}

// ---------------------------------------------------------------------------
// 7: a holder killed mid-tenure.

// xpKillHolder kills the holder with SIGKILL and waits until it is gone.
func xpKillHolder(t *testing.T, c *child) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	err := c.cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws, ok := ee.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "holder ended with %v, not SIGKILL", ws)
}

func TestFenceReacquiresPromptlyAfterHolderKilledMidTenure(t *testing.T) {
	xpQuickChildExit(t)
	tests := []struct {
		name string
		line string // appended by the holder before it is killed; "" for none
		// takeover: the dead holder's unfinished writes break the chain.
		// A dead holder whose file is unchanged broke nothing (DESIGN §2).
		takeover bool
	}{
		{name: "holder appended before it died", line: `{"from":"cron","partial":true}`, takeover: true},
		{name: "holder wrote nothing before it died", line: "", takeover: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sessionPath(t)
			fence := xpOpenWindow(t, file, xpInitialLines)

			holder, gen := xpStartHolder(t, file, "cron", tt.line)
			require.Equal(t, fence.Released+1, gen)
			pid := holder.cmd.Process.Pid
			xpKillHolder(t, holder)

			start := time.Now()
			err := fence.reacquire(t)
			elapsed := time.Since(start)
			require.Less(t, elapsed, xpPromptly, "Reacquire after the holder died took %v", elapsed)

			if !tt.takeover {
				require.NoError(t, err, "a dead holder that changed nothing broke nothing")
				w := fence.Window()
				require.Equal(t, uint64(2), w.Delta())
				require.Len(t, w.Tenures, 1)
				require.True(t, w.Tenures[0].Died)
				require.Equal(t, pid, w.Tenures[0].PID)
				require.False(t, w.Tenures[0].Wrote)
				return
			}
			te := xpRequireTakeover(t, err, sessionlock.CauseHolderDied, sessionlock.Appended)
			require.NotNil(t, te.DeadHolder, "error: %v", err)
			require.Equal(t, pid, te.DeadHolder.PID)
			require.Equal(t, "cron", te.DeadHolder.Owner)
			require.Equal(t, gen+1, te.BreakGeneration)
			require.Contains(t, te.Error(), `"cron"`)
		})
	}
}

func TestAcquireSucceedsPromptlyAfterHolderKilledMidTenure(t *testing.T) {
	xpQuickChildExit(t)
	file := sessionPath(t)
	holder, gen := xpStartHolder(t, file, "cron", `{"from":"cron","partial":true}`)
	xpKillHolder(t, holder)

	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	start := time.Now()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, file, sessionlock.WithOwner("controller"))
	elapsed := time.Since(start)
	require.NoError(t, err)
	defer l.Release()
	require.Less(t, elapsed, xpPromptly, "acquire after the holder died took %v", elapsed)
	require.Equal(t, gen+1, l.Epoch())
}

// ---------------------------------------------------------------------------
// 8: an unprivileged user who cannot write the lock file's directory.

// xpBinaryForNobody returns a copy of the test binary that user nobody can
// execute, in a fresh 0755 directory under /tmp (the go test build
// directory is private to root). It also returns that directory, which the
// caller may use for other files nobody must reach.
func xpBinaryForNobody(t *testing.T) (bin, dir string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "sessionlock-nobody-*")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))

	self, err := os.Executable()
	require.NoError(t, err)
	src, err := os.Open(self)
	require.NoError(t, err)
	defer src.Close()
	bin = filepath.Join(dir, "sessionlock.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	require.NoError(t, os.Chmod(bin, 0o755))
	return bin, dir
}

// xpRunAsNobody runs the xp-report child role as user nobody and returns
// its report.
func xpRunAsNobody(t *testing.T, bin, dir, file string) xpAcquireReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xpGenerous)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GORACE="+xpQuickExitGORACE(), childModeEnv+"=xp-report", childArgsEnv+"="+strings.Join([]string{file, "nobody"}, childArgSep))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: xpNobody, Gid: xpNobody}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "child as nobody failed: %s", stderr.String())
	var rep xpAcquireReport
	require.NoError(t, json.Unmarshal(out, &rep), "child printed %q", out)
	require.Equal(t, xpNobody, rep.UID, "setup: the child must run as nobody")
	return rep
}

func TestAcquireAsUserWithoutWriteAccessFailsWithPermissionDeniedAndCreatesNothing(t *testing.T) {
	needRoot(t)
	bin, base := xpBinaryForNobody(t)

	tests := []struct {
		name string
		// prepare runs as root in the session directory before nobody
		// tries.
		prepare func(t *testing.T, file string)
	}{
		{
			name:    "no lock file yet, directory not writable",
			prepare: func(*testing.T, string) {},
		},
		{
			name: "lock file made by root, not writable by nobody",
			prepare: func(t *testing.T, file string) {
				require.NoError(t, appendLine(file, xpInitialLines[0]))
				l := xpAcquire(t, file, "root")
				require.NoError(t, l.Release())
				st, err := os.Stat(l.LockFile())
				require.NoError(t, err)
				require.Zero(t, st.Mode().Perm()&0o002, "setup: the lock file must not be world-writable (umask)")
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, fmt.Sprintf("root-only-%d", i))
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.Chmod(dir, 0o755))
			file := filepath.Join(dir, "session.jsonl")
			lockPath := file + ".lock"
			tt.prepare(t, file)
			entriesBefore, err := os.ReadDir(dir)
			require.NoError(t, err)
			ledgerBefore, ledgerErr := os.ReadFile(lockPath)

			rep := xpRunAsNobody(t, bin, base, file)

			require.False(t, rep.Acquired, "nobody acquired a lock it cannot write (epoch %d)", rep.Epoch)
			require.NotEmpty(t, rep.Error)
			require.Contains(t, rep.Error, lockPath, "the error names the lock file")
			require.Contains(t, rep.Error, "permission denied")
			require.True(t, rep.Permission, "errors.Is(err, fs.ErrPermission) in the child; error: %s", rep.Error)
			require.Equal(t, lockPath, rep.PathErrorPath)

			entriesAfter, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Equal(t, xpNames(entriesBefore), xpNames(entriesAfter), "nothing is created")
			ledgerAfter, err := os.ReadFile(lockPath)
			if ledgerErr != nil {
				require.ErrorIs(t, err, fs.ErrNotExist, "no lock file is created")
			} else {
				require.NoError(t, err)
				require.Equal(t, string(ledgerBefore), string(ledgerAfter), "the ledger is unchanged")
			}
		})
	}
}

func xpNames(entries []os.DirEntry) []string {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
