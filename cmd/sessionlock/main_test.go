package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// Timing. Nothing here waits for a fixed time to pass: these bound waits
// for events, so that a broken build fails instead of hanging.
const (
	// commandTimeout bounds one run of the binary.
	commandTimeout = 30 * time.Second
	// readyTimeout bounds the wait for a background command to report
	// that it runs, which means its sessionlock holds the lock.
	readyTimeout = 10 * time.Second
	// exitTimeout bounds the wait for a background command to end after
	// it was told to.
	exitTimeout = 10 * time.Second
	// lockTimeout is the --timeout of a command that must give up waiting
	// for a lock held by another process.
	lockTimeout = "300ms"
)

// sessionlockBin is the command under test, built once by TestMain.
var sessionlockBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndTest(m))
}

func buildAndTest(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sessionlock-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	sessionlockBin = filepath.Join(dir, "sessionlock"+exe)
	build := exec.Command(goTool(exe), "build", "-o", sessionlockBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building sessionlock: %v\n", err)
		return 1
	}
	return m.Run()
}

// goTool finds the go command: on PATH, else in the Go tree that built
// this test.
func goTool(exe string) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go"+exe)
	}
	//lint:ignore SA1019 a last resort when go is not on PATH: the tree that built this test binary is the one to build with.
	return filepath.Join(runtime.GOROOT(), "bin", "go"+exe)
}

// result is how one run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
	pid            int
}

// run runs the binary with args and stdin and waits for it to end.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sessionlockBin, args...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sessionlock %s: %v", strings.Join(args, " "), err)
	}
	require.NoError(t, ctx.Err(), "sessionlock %s did not end in %v", strings.Join(args, " "), commandTimeout)
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), pid: cmd.Process.Pid}
}

// mustRun runs the binary and requires exit status 0.
func mustRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := run(t, stdin, args...)
	require.Zero(t, r.code, "sessionlock %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

// childEnv is this process's environment without the variables that exec
// sets, so that a test run under `sessionlock exec` tests the same thing.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "SESSIONLOCK_SESSION=") || strings.HasPrefix(kv, "SESSIONLOCK_EPOCH=")
	})
}

// needPOSIX skips tests built on /bin/sh and POSIX signals.
func needPOSIX(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh and POSIX signals")
	}
}

// needTool returns the path of an external tool, or skips the test when
// it is missing; with SESSIONLOCK_REQUIRE_ALL=1 a missing tool fails it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SESSIONLOCK_REQUIRE_ALL") == "1" {
		t.Fatalf("SESSIONLOCK_REQUIRE_ALL=1 but %s is missing: %v", name, err)
	}
	t.Skipf("needs %s (util-linux flock(1) for the lock file): %v", name, err)
	return ""
}

// newSession returns a session path in a new directory of its own.
func newSession(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return filepath.Join(dir, "session.jsonl")
}

// background is a run of the binary that the test does not wait for.
type background struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *watcher
	stderr *watcher
	done   chan struct{}
	err    error
}

// startExec starts `sessionlock exec --owner owner session -- sh -c script`
// and returns when script has printed "ready", that is, while the lock is
// held. Cleanup closes the command's standard input and, if it has not
// ended by then, kills it.
func startExec(t *testing.T, session, owner, script string) *background {
	t.Helper()
	needPOSIX(t)
	cmd := exec.Command(sessionlockBin, "exec", "--owner", owner, session, "--", "/bin/sh", "-c", script)
	cmd.Env = childEnv()
	cmd.WaitDelay = exitTimeout
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	b := &background{cmd: cmd, stdin: stdin, stdout: newWatcher("ready\n"), stderr: newWatcher(""), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	require.NoError(t, cmd.Start())
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-b.done:
		case <-time.After(exitTimeout):
			_ = cmd.Process.Kill()
			<-b.done
		}
	})

	select {
	case <-b.stdout.seen:
	case <-b.done:
		t.Fatalf("sessionlock exec ended before the command was ready: %v\nstderr: %s", b.err, b.stderr)
	case <-time.After(readyTimeout):
		t.Fatalf("sessionlock exec: command not ready after %v\nstderr: %s", readyTimeout, b.stderr)
	}
	return b
}

// startHolder holds the lock on session from another process, in a
// command that waits for its standard input to close.
func startHolder(t *testing.T, session, owner string) *background {
	t.Helper()
	return startExec(t, session, owner, "echo ready; read line; exit 0")
}

// wait waits for b to end and returns its exit status.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(exitTimeout):
		t.Fatalf("sessionlock exec still running after %v", exitTimeout)
	}
	var ee *exec.ExitError
	if b.err != nil && !errors.As(b.err, &ee) {
		t.Fatalf("sessionlock exec: %v", b.err)
	}
	return b.cmd.ProcessState.ExitCode()
}

// release lets a holder's command end and requires exit status 0.
func (b *background) release(t *testing.T) {
	t.Helper()
	require.NoError(t, b.stdin.Close())
	require.Zero(t, b.wait(t), "stderr: %s", b.stderr)
}

// watcher collects a command's output and closes seen once want has
// appeared in it.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func newWatcher(want string) *watcher {
	return &watcher{want: want, seen: make(chan struct{})}
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && strings.Contains(w.buf.String(), w.want) {
		w.want = ""
		close(w.seen)
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The status --json schema, version 1, as the command documents it.

type statusJSON struct {
	Version         int            `json:"version"`
	Argument        string         `json:"argument"`
	SessionFile     string         `json:"session_file"`
	LockFile        string         `json:"lock_file"`
	LockFileExists  bool           `json:"lock_file_exists"`
	Held            bool           `json:"held"`
	Holder          *holderJSON    `json:"holder"`
	Generation      uint64         `json:"generation"`
	FingerprintMode *string        `json:"fingerprint_mode"`
	LedgerError     *string        `json:"ledger_error"`
	Tenures         []tenureJSON   `json:"tenures"`
	LastBreak       *breakJSON     `json:"last_break"`
	FileSystem      fileSystemJSON `json:"file_system"`
	Error           string         `json:"error"`
}

type holderJSON struct {
	Owner        string  `json:"owner"`
	PID          int     `json:"pid"`
	Host         string  `json:"host"`
	ProcessStart *string `json:"process_start"`
	Since        *string `json:"since"`
	Generation   uint64  `json:"generation"`
	OnThisHost   bool    `json:"on_this_host"`
	Alive        *bool   `json:"alive"`
}

type tenureJSON struct {
	Generation      uint64  `json:"generation"`
	Owner           string  `json:"owner"`
	PID             int     `json:"pid"`
	Host            string  `json:"host"`
	Since           *string `json:"since"`
	Released        *string `json:"released"`
	Wrote           bool    `json:"wrote"`
	SizeBefore      int64   `json:"size_before"`
	SizeAfter       int64   `json:"size_after"`
	Died            bool    `json:"died"`
	FingerprintMode *string `json:"fingerprint_mode"`
}

type breakJSON struct {
	Generation uint64          `json:"generation"`
	Cause      *string         `json:"cause"`
	Change     *string         `json:"change"`
	At         *string         `json:"at"`
	Detail     string          `json:"detail"`
	DeadHolder json.RawMessage `json:"dead_holder"`
}

type fileSystemJSON struct {
	Type           string `json:"type"`
	Remote         bool   `json:"remote"`
	FineTimestamps bool   `json:"fine_timestamps"`
}

// statusFields are the keys of an object for a session that was inspected.
var statusFields = []string{
	"version", "argument", "session_file", "lock_file", "lock_file_exists", "held", "holder",
	"generation", "fingerprint_mode", "ledger_error", "tenures", "last_break", "file_system",
}

// statusOf runs status --json on sessions, checks that each object has
// exactly the documented keys, and decodes it.
func statusOf(t *testing.T, wantCode int, sessions ...string) []statusJSON {
	t.Helper()
	r := run(t, "", append([]string{"status", "--json"}, sessions...)...)
	require.Equal(t, wantCode, r.code, "stderr: %s", r.stderr)

	var raw []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw), "stdout: %s", r.stdout)
	require.Len(t, raw, len(sessions))
	for i, obj := range raw {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		if _, failed := obj["error"]; failed {
			require.ElementsMatch(t, []string{"version", "argument", "error"}, keys, "object %d", i)
		} else {
			require.ElementsMatch(t, statusFields, keys, "object %d", i)
		}
	}

	var out []statusJSON
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out))
	for i, st := range out {
		require.Equal(t, 1, st.Version)
		require.Equal(t, sessions[i], st.Argument)
	}
	return out
}

// requireTime parses a schema time: RFC 3339, in UTC.
func requireTime(t *testing.T, s *string) time.Time {
	t.Helper()
	require.NotNil(t, s, "time is null")
	require.True(t, strings.HasSuffix(*s, "Z"), "time %q is not in UTC", *s)
	tm, err := time.Parse(time.RFC3339Nano, *s)
	require.NoError(t, err)
	return tm
}

// snapshot reads every file in dir, so that a test can show that a
// command changed nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(data)
	}
	return files
}

// shellAppend appends line to session with /bin/sh, ignoring the lock.
func shellAppend(t *testing.T, session, line string) {
	t.Helper()
	needPOSIX(t)
	out, err := exec.Command("/bin/sh", "-c", `echo "$1" >> "$2"`, "sh", line, session).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestStatusOfASessionNeverLocked(t *testing.T) {
	t.Parallel()
	session := newSession(t)

	r := mustRun(t, "", "status", session)
	require.Contains(t, r.stdout, session)
	require.Contains(t, r.stdout, "no (no lock file: never locked)")

	st := statusOf(t, 0, session)[0]
	require.Equal(t, session, st.SessionFile)
	require.Equal(t, session+".lock", st.LockFile)
	require.False(t, st.LockFileExists)
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	require.Zero(t, st.Generation)
	require.NotNil(t, st.Tenures, "tenures is [] when empty, not null")
	require.Empty(t, st.Tenures)
	require.Nil(t, st.LastBreak)
	require.Nil(t, st.LedgerError)
	require.NotEmpty(t, st.FileSystem.Type)
	require.NoFileExists(t, session+".lock", "status creates nothing")
}

func TestStatusListsClosedTenures(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	start := time.Now()
	first := mustRun(t, "", "append", "--owner", "writer", session, `{"n":1}`)
	second := mustRun(t, "", "append", "--owner", "writer", session, `{"n":2}`)

	st := statusOf(t, 0, session)[0]
	require.True(t, st.LockFileExists)
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	require.Equal(t, uint64(2), st.Generation)
	require.NotNil(t, st.FingerprintMode)
	require.Contains(t, []string{"stat", "content"}, *st.FingerprintMode)
	require.Nil(t, st.LedgerError)
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Len(t, st.Tenures, 2)
	for i, want := range []struct {
		pid        int
		sizeBefore int64
	}{{first.pid, 0}, {second.pid, 8}} {
		tn := st.Tenures[i]
		require.Equal(t, uint64(i+1), tn.Generation)
		require.Equal(t, "writer", tn.Owner)
		require.Equal(t, want.pid, tn.PID)
		require.Equal(t, host, tn.Host)
		require.True(t, tn.Wrote)
		require.False(t, tn.Died)
		require.Equal(t, want.sizeBefore, tn.SizeBefore)
		require.Equal(t, want.sizeBefore+8, tn.SizeAfter)
		since, released := requireTime(t, tn.Since), requireTime(t, tn.Released)
		require.False(t, since.Before(start.Add(-time.Second)))
		require.False(t, released.Before(since))
	}

	r := mustRun(t, "", "status", session)
	require.Regexp(t, `\n  held +no\n`, r.stdout)
	require.Contains(t, r.stdout, "writer")
	require.Contains(t, r.stdout, "0 -> 8")
	require.Contains(t, r.stdout, "8 -> 16")
}

func TestStatusWhileAnotherProcessHoldsTheLock(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	holder := startHolder(t, session, "holder")
	pid := holder.cmd.Process.Pid

	st := statusOf(t, 0, session)[0]
	require.True(t, st.Held)
	require.NotNil(t, st.Holder)
	require.Equal(t, "holder", st.Holder.Owner)
	require.Equal(t, pid, st.Holder.PID, "the holder is the sessionlock process, not its command")
	require.True(t, st.Holder.OnThisHost)
	require.NotNil(t, st.Holder.Alive)
	require.True(t, *st.Holder.Alive)
	require.Equal(t, st.Generation, st.Holder.Generation)
	requireTime(t, st.Holder.Since)

	r := mustRun(t, "", "status", session)
	require.Contains(t, r.stdout, fmt.Sprintf(`yes, by "holder" pid %d`, pid))
	require.Contains(t, r.stdout, fmt.Sprintf("%d is alive on this host", pid))

	holder.release(t)
	st = statusOf(t, 0, session)[0]
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	last := st.Tenures[len(st.Tenures)-1]
	require.Equal(t, "holder", last.Owner)
	require.Equal(t, pid, last.PID)
	require.False(t, last.Wrote)
	require.False(t, last.Died)
}

func TestStatusShowsTheBreakAfterABypassingWrite(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	mustRun(t, "", "append", "--owner", "writer", session, `{"n":1}`)
	shellAppend(t, session, `{"by":"hand"}`)
	mustRun(t, "", "append", "--owner", "writer", session, `{"n":2}`)

	st := statusOf(t, 0, session)[0]
	require.NotNil(t, st.LastBreak)
	require.Equal(t, uint64(2), st.LastBreak.Generation, "found by the tenure after the bypass")
	require.NotNil(t, st.LastBreak.Cause)
	require.Equal(t, "bypass", *st.LastBreak.Cause)
	require.NotNil(t, st.LastBreak.Change)
	require.Equal(t, "appended", *st.LastBreak.Change)
	requireTime(t, st.LastBreak.At)
	require.Equal(t, "null", string(st.LastBreak.DeadHolder))

	r := mustRun(t, "", "status", session)
	require.Regexp(t, `\n  last break +generation 2: bypass, file appended`, r.stdout)
}

func TestStatusReportsEverySessionAndFailsForOneThatCannotBeInspected(t *testing.T) {
	t.Parallel()
	good := newSession(t)
	bad := filepath.Join(filepath.Dir(good), "missing", "session.jsonl")

	out := statusOf(t, 1, good, bad)
	require.Empty(t, out[0].Error)
	require.Equal(t, good, out[0].SessionFile)
	require.Contains(t, out[1].Error, "does not exist")

	r := run(t, "", "status", bad, good)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "does not exist")
	require.Contains(t, r.stdout, good, "the good session is still printed")
}

func TestExecPassesTheExitStatusThrough(t *testing.T) {
	t.Parallel()
	needPOSIX(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 42", 42},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	} {
		t.Run(tc.script, func(t *testing.T) {
			t.Parallel()
			session := newSession(t)
			r := run(t, "", "exec", session, "--", "/bin/sh", "-c", tc.script)
			require.Equal(t, tc.want, r.code, "stderr: %s", r.stderr)

			st := statusOf(t, 0, session)[0]
			require.False(t, st.Held, "released after the command")
			require.Nil(t, st.Holder, "the tenure is closed in the ledger")
			require.Len(t, st.Tenures, 1)
		})
	}
}

func TestExecGivesTheCommandTheCanonicalSessionAndEpoch(t *testing.T) {
	t.Parallel()
	needPOSIX(t)
	session := newSession(t)
	mustRun(t, "", "append", session, "{}")
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(filepath.Dir(session), link))

	r := mustRun(t, "", "exec", "--owner", "script", filepath.Join(link, "session.jsonl"), "--",
		"/bin/sh", "-c", `printf '%s %s\n' "$SESSIONLOCK_SESSION" "$SESSIONLOCK_EPOCH"`)
	require.Equal(t, session+" 2\n", r.stdout)

	st := statusOf(t, 0, session)[0]
	last := st.Tenures[len(st.Tenures)-1]
	require.Equal(t, uint64(2), last.Generation)
	require.Equal(t, "script", last.Owner)
	require.Equal(t, r.pid, last.PID)
}

func TestExecHoldsTheLockWhileTheCommandRuns(t *testing.T) {
	t.Parallel()
	flock := needTool(t, "flock")
	session := newSession(t)
	holder := startHolder(t, session, "holder")

	probe := func() int {
		t.Helper()
		err := exec.Command(flock, "-n", "-x", session+".lock", "true").Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("flock: %v", err)
		}
		if ee != nil {
			return ee.ExitCode()
		}
		return 0
	}
	require.Equal(t, 1, probe(), "flock(1) must not get the lock while the command runs")
	holder.release(t)
	require.Equal(t, 0, probe(), "flock(1) gets the lock once the command has ended")
}

func TestExecPassesSIGTERMOnAndReleases(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	// The loop ends by itself after exitTimeout, so that nothing is left
	// running if SIGTERM never arrives.
	rounds := int(exitTimeout / (50 * time.Millisecond))
	child := startExec(t, session, "trapper",
		fmt.Sprintf(`trap 'exit 7' TERM; echo ready; n=0; while [ $n -lt %d ]; do sleep 0.05; n=$((n+1)); done; exit 1`, rounds))
	require.True(t, statusOf(t, 0, session)[0].Held)

	require.NoError(t, child.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 7, child.wait(t), "stderr: %s", child.stderr)

	st := statusOf(t, 0, session)[0]
	require.False(t, st.Held)
	require.Nil(t, st.Holder)
	last := st.Tenures[len(st.Tenures)-1]
	require.Equal(t, "trapper", last.Owner)
	require.False(t, last.Died, "released normally, not left for the next holder to close")
	requireTime(t, last.Released)

	if flock, err := exec.LookPath("flock"); err == nil {
		require.NoError(t, exec.Command(flock, "-n", "-x", session+".lock", "true").Run())
	}
}

func TestWaitingPastTimeoutExits3AndNamesTheHolder(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	mustRun(t, "", "append", session, "{}")
	holder := startHolder(t, session, "cron")
	pid := holder.cmd.Process.Pid
	before := snapshot(t, filepath.Dir(session))

	for _, args := range [][]string{
		{"exec", "--timeout", lockTimeout, session, "--", "true"},
		{"append", "--timeout", lockTimeout, session, `{"late":true}`},
	} {
		r := run(t, "", args...)
		require.Equal(t, 3, r.code, "sessionlock %v\nstderr: %s", args, r.stderr)
		require.Contains(t, r.stderr, "timed out after "+lockTimeout+" waiting for "+session)
		require.Contains(t, r.stderr, fmt.Sprintf(`held by "cron" pid %d on host`, pid))
	}
	require.Equal(t, before, snapshot(t, filepath.Dir(session)), "nothing written")
	holder.release(t)
}

func TestExecOfACommandThatCannotRun(t *testing.T) {
	t.Parallel()
	needPOSIX(t)
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "data.txt")
	require.NoError(t, os.WriteFile(notExecutable, []byte("echo hi\n"), 0o644))

	for _, tc := range []struct {
		name    string
		command string
		want    int
	}{
		{"not on PATH", "sessionlock-test-no-such-command", 127},
		{"missing path", filepath.Join(dir, "missing"), 127},
		{"not executable", notExecutable, 126},
		{"directory", dir, 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			session := newSession(t)
			r := run(t, "", "exec", session, "--", tc.command)
			require.Equal(t, tc.want, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tc.command)
			require.Empty(t, snapshot(t, filepath.Dir(session)), "no lock taken for a command that cannot run")
		})
	}
}

func TestExecAndAppendRefuseToWaitForTheirOwnTenure(t *testing.T) {
	t.Parallel()
	needPOSIX(t)
	session := newSession(t)

	// Without the check, the inner append would wait for the lock that
	// its own parent holds until the command ends: --timeout turns that
	// into exit status 3, which the outer exec would pass through.
	r := run(t, "", "exec", session, "--", "/bin/sh", "-c",
		`"$0" append --timeout 5s "$SESSIONLOCK_SESSION" '{}'`, sessionlockBin)
	require.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	require.Contains(t, r.stderr, "would never end")
	require.NoFileExists(t, session)
}

func TestAppendWritesArgumentsAsLines(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	r := mustRun(t, "", "append", "--owner", "script", session, "one", "two words", "-dash")
	require.Equal(t, "appended 3 line(s) at generation 1\n", r.stdout)
	requireFile(t, session, "one\ntwo words\n-dash\n")

	st := statusOf(t, 0, session)[0]
	require.Len(t, st.Tenures, 1, "one tenure for all lines")
	require.Equal(t, "script", st.Tenures[0].Owner)
}

func TestAppendReadsStandardInput(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	mustRun(t, "first\r\nsecond\n\nlast without newline", "append", session)
	requireFile(t, session, "first\nsecond\n\nlast without newline\n")
	require.Len(t, statusOf(t, 0, session)[0].Tenures, 1, "one tenure for all lines")
}

func TestAppendOfNothingWritesNothing(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	for _, args := range [][]string{{"append", session}, {"append", "--json", session}} {
		r := run(t, "", args...)
		require.Zero(t, r.code, "stderr: %s", r.stderr)
		require.Empty(t, r.stdout)
	}
	require.Empty(t, snapshot(t, filepath.Dir(session)), "no session file, no lock file")
}

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	mustRun(t, "", "append", "--json", session, `{"role":"user"}`, `[1,2]`, `"text"`)
	mustRun(t, "{\"a\":1}\n{\"b\":[true,null]}\n", "append", "--json", session)
	want := "{\"role\":\"user\"}\n[1,2]\n\"text\"\n{\"a\":1}\n{\"b\":[true,null]}\n"
	requireFile(t, session, want)

	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		line  string
	}{
		{"argument", "", []string{`{"ok":1}`, `{"broken":`}, "line 2"},
		{"two values on one line", "", []string{`{} {}`}, "line 1"},
		{"line break inside", "", []string{`{}`, `{}`, "{\n}"}, "line 3"},
		{"empty line", "", []string{""}, "line 1"},
		{"standard input", "{\"ok\":1}\n{\"ok\":2}\nnot json\n{\"ok\":3}\n", nil, "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, filepath.Dir(session))
			r := run(t, tc.stdin, append([]string{"append", "--json", session}, tc.args...)...)
			require.NotZero(t, r.code)
			require.Contains(t, r.stderr, tc.line)
			require.Contains(t, r.stderr, "nothing written")
			require.Equal(t, before, snapshot(t, filepath.Dir(session)), "session and lock file unchanged, byte for byte")
		})
	}
}

func requireFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, string(got))
}

// fenceWindow opens a prompt fence on session in this process, releases it
// for a prompt, runs coTenant, and reacquires.
func fenceWindow(t *testing.T, session string, coTenant func()) (*sessionlock.PromptFence, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	require.NoError(t, err)
	fence := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { require.NoError(t, fence.Close()) })

	_, err = fence.Lock().Append([]byte(`{"role":"user"}` + "\n"))
	require.NoError(t, err)
	require.NoError(t, fence.ReleaseForPrompt())
	coTenant()
	return fence, fence.Reacquire(ctx)
}

func TestCoTenantsInAFenceWindowAreAccepted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		posix bool
		args  func(session string) []string
	}{
		{"append", false, func(session string) []string {
			return []string{"append", "--owner", "cron", session, `{"type":"cron"}`}
		}},
		{"exec", true, func(session string) []string {
			return []string{"exec", "--owner", "cron", session, "--", "/bin/sh", "-c", `echo '{"type":"cron"}' >> "$SESSIONLOCK_SESSION"`}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.posix {
				needPOSIX(t)
			}
			session := newSession(t)
			var r result
			fence, err := fenceWindow(t, session, func() { r = mustRun(t, "", tc.args(session)...) })
			require.NoError(t, err, "the fence accepts a co-tenant's write")

			w := fence.Window()
			require.Equal(t, uint64(2), w.Delta())
			writers := w.Writers()
			require.Len(t, writers, 1)
			require.Equal(t, "cron", writers[0].Owner)
			require.Equal(t, r.pid, writers[0].PID)
			requireFile(t, session, "{\"role\":\"user\"}\n{\"type\":\"cron\"}\n")
		})
	}
}

func TestAShellAppendInAFenceWindowIsATakeover(t *testing.T) {
	t.Parallel()
	needPOSIX(t)
	session := newSession(t)
	fence, err := fenceWindow(t, session, func() { shellAppend(t, session, `{"by":"hand"}`) })

	var te *sessionlock.TakeoverError
	require.ErrorAs(t, err, &te)
	require.Equal(t, sessionlock.CauseBypass, te.Cause)
	require.Equal(t, sessionlock.Appended, te.Change)
	require.True(t, fence.TakeoverDetected())
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	session := newSession(t)
	mustRun(t, "", "append", session, `{"n":1}`)
	dir := filepath.Dir(session)
	missing := filepath.Join(dir, "missing", "session.jsonl")

	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		says  string
	}{
		{"no command", nil, "", 2, "usage"},
		{"unknown command", []string{"frobnicate"}, "", 2, `unknown command "frobnicate"`},
		{"status without session", []string{"status"}, "", 2, "need at least one SESSION"},
		{"status unknown flag", []string{"status", "--yaml", session}, "", 2, "-yaml"},
		{"status missing directory", []string{"status", missing}, "", 1, "does not exist"},
		{"append without session", []string{"append"}, "", 2, "need a SESSION"},
		{"append unknown flag", []string{"append", "--force", session, "x"}, "", 2, "-force"},
		{"append negative timeout", []string{"append", "--timeout", "-1s", session, "x"}, "", 2, "negative"},
		{"append bad timeout", []string{"append", "--timeout", "soon", session, "x"}, "", 2, "soon"},
		{"append missing directory", []string{"append", missing, "x"}, "", 1, "does not exist"},
		{"append missing directory, stdin", []string{"append", missing}, "x\n", 1, "does not exist"},
		{"append session is a directory", []string{"append", dir, "x"}, "", 1, "directory"},
		{"append invalid JSON", []string{"append", "--json", session, "{"}, "", 1, "line 1"},
		{"exec without session", []string{"exec"}, "", 2, "need a SESSION"},
		{"exec without --", []string{"exec", session, "true"}, "", 2, "need --"},
		{"exec without command", []string{"exec", session, "--"}, "", 2, "no COMMAND after --"},
		{"exec two operands", []string{"exec", session, "other", "--", "true"}, "", 2, `unexpected argument "other"`},
		{"exec unknown flag", []string{"exec", "--user", "x", session, "--", "true"}, "", 2, "-user"},
		{"exec missing directory", []string{"exec", missing, "--", "true"}, "", 1, "does not exist"},
		{"demo operand", []string{"demo", "now"}, "", 2, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, dir)
			r := run(t, tc.stdin, tc.args...)
			require.Equal(t, tc.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, tc.says)
			require.Empty(t, r.stdout)
			require.Equal(t, before, snapshot(t, dir), "nothing created or changed")
		})
	}
}

func TestHelpGoesToStandardOutput(t *testing.T) {
	t.Parallel()
	r := mustRun(t, "", "help")
	for _, cmd := range []string{"status", "exec", "append", "demo"} {
		require.Contains(t, r.stdout, "sessionlock "+cmd+" ")
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := mustRun(t, "", "demo", "--dir", dir)
	require.Contains(t, r.stdout, "accepted")
	require.Contains(t, r.stdout, `"heartbeat"`)
	require.Contains(t, r.stdout, `"cron"`)
	if runtime.GOOS != "windows" {
		require.Contains(t, r.stdout, `"script"`)
	}
	require.Contains(t, r.stdout, "takeover")
	require.Contains(t, r.stdout, "cause:  bypass")
	require.Contains(t, r.stdout, "Every verdict as expected")
	require.FileExists(t, filepath.Join(dir, "session.jsonl"))
}
