// Package testenv holds what the harness module's tests share: skipping
// (or, in CI, failing) when a privilege or tool is missing, and child
// processes that re-run the test binary in a role.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// RequireEnv, when set to 1 (as .ci/run does), turns every skip for a
// missing privilege or tool into a failure, so CI cannot pass by skipping.
const RequireEnv = "SESSIONLOCK_REQUIRE_ALL"

// ChildTimeout bounds how long a test waits for a child's output.
const ChildTimeout = 30 * time.Second

// SkipOrFail skips the test with reason on a normal machine and fails it
// when RequireEnv is 1.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("required check cannot run (%s=1): %s", RequireEnv, reason)
	}
	t.Skip(reason)
}

// NeedRoot skips (or, in CI, fails) unless the test runs as root; why says
// what root is needed for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root "+why)
	}
}

// NeedCommand returns the path of an external tool, or skips (or, in CI,
// fails) when it is not installed.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, name+" is not installed")
	}
	return p
}

// QuickExitEnv makes a child built with -race exit at once: by default the
// race runtime sleeps a second at exit (GORACE atexit_sleep_ms).
func QuickExitEnv() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// Roles runs a test binary's child roles. The role's name travels in
// ModeEnv and its arguments in ArgsEnv, separated by argSep.
type Roles struct {
	ModeEnv, ArgsEnv string
	Modes            map[string]func(args []string) int
}

const argSep = "\x1f"

// Dispatch runs the role named in the environment, if any, and exits with
// its status; it returns when the process is not a child. Call it first in
// TestMain.
func (r Roles) Dispatch() {
	mode := os.Getenv(r.ModeEnv)
	if mode == "" {
		return
	}
	fn, ok := r.Modes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		os.Exit(2)
	}
	var args []string
	if a := os.Getenv(r.ArgsEnv); a != "" {
		args = strings.Split(a, argSep)
	}
	os.Exit(fn(args))
}

// Child is a running re-run of the test binary in a role.
type Child struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser
	Stdout *bufio.Reader
}

// Start starts the test binary in role mode with args. Its standard error
// goes to the test log, and it is killed when the test ends if it is still
// running.
func (r Roles) Start(t testing.TB, mode string, args ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), r.ModeEnv+"="+mode, r.ArgsEnv+"="+strings.Join(args, argSep), QuickExitEnv())
	cmd.Stderr = &LogWriter{T: t, Prefix: mode + ": "}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &Child{Cmd: cmd, Stdin: stdin, Stdout: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		_ = c.Cmd.Process.Kill()
		_ = c.Cmd.Wait()
	})
	return c
}

// ReadLine waits for the child's next line of output.
func (c *Child) ReadLine(t testing.TB) string {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := c.Stdout.ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err, "child output ended early")
		return r.line
	case <-time.After(ChildTimeout):
		t.Fatalf("child did not answer within %v", ChildTimeout)
		return ""
	}
}

// Run runs the test binary in role mode to completion, with its standard
// input closed, and returns its output and exit status.
func (r Roles) Run(t testing.TB, mode string, args ...string) (string, int) {
	t.Helper()
	c := r.Start(t, mode, args...)
	_ = c.Stdin.Close()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := io.ReadAll(c.Stdout)
		done <- result{out, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(ChildTimeout):
		t.Fatalf("child %s did not finish within %v", mode, ChildTimeout)
	}
	require.NoError(t, res.err)
	status := 0
	var ee *exec.ExitError
	if err := c.Cmd.Wait(); errors.As(err, &ee) {
		status = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return strings.TrimSpace(string(res.out)), status
}

// LogWriter writes what it gets to the test log, line by line.
type LogWriter struct {
	T      testing.TB
	Prefix string
}

// Write logs p.
func (w *LogWriter) Write(p []byte) (int, error) {
	w.T.Logf("%s%s", w.Prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
