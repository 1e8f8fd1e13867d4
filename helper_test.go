package sessionlock_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// Cross-process tests re-run this test binary as a child. The child reads
// its role from childModeEnv and its arguments from childArgsEnv (fields
// separated by childArgSep); test files register roles in init functions.
const (
	childModeEnv = "SESSIONLOCK_TEST_CHILD"
	childArgsEnv = "SESSIONLOCK_TEST_CHILD_ARGS"
	childArgSep  = "\x1f"

	// requireEnv, when set to 1 (as .ci/run does), turns every skip for a
	// missing privilege or tool into a failure, so CI cannot pass by
	// skipping the tests that matter most.
	requireEnv = "SESSIONLOCK_REQUIRE_ALL"

	// childTimeout bounds how long a test waits for a child's handshake.
	childTimeout = 30 * time.Second
)

// childModes maps a role name to the code the child runs. The function's
// return value is the child's exit status.
var childModes = map[string]func(args []string) int{}

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		fn, ok := childModes[mode]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
			os.Exit(2)
		}
		var args []string
		if a := os.Getenv(childArgsEnv); a != "" {
			args = strings.Split(a, childArgSep)
		}
		os.Exit(fn(args))
	}
	os.Exit(m.Run())
}

func init() {
	// append FILE OWNER LINE: one co-tenant tenure that appends LINE.
	childModes["append"] = func(args []string) int {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := appendLine(args[0], args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(l.Epoch())
		return 0
	}
	// hold FILE OWNER [LINE]: acquire, optionally append LINE, print
	// "held GEN", then wait until killed (or until stdin closes, which
	// releases normally).
	childModes["hold"] = func(args []string) int {
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), args[0], sessionlock.WithOwner(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if len(args) > 2 && args[2] != "" {
			if err := appendLine(args[0], args[2]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Printf("held %d\n", l.Epoch())
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
}

// child is a running re-execution of the test binary.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// startChild starts the test binary in the given role. The child is killed
// when the test ends if it is still running.
func startChild(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childArgsEnv+"="+strings.Join(args, childArgSep))
	cmd.Stderr = &testWriter{t: t, prefix: mode + ": "}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	})
	return c
}

// readLine waits for the child's next line of output.
func (c *child) readLine(t *testing.T) string {
	t.Helper()
	return readLineWithin(t, c.stdout, childTimeout, "child")
}

// readLineWithin reads the next line from r, trimmed, failing the test if
// none arrives within timeout or the output ends first.
func readLineWithin(t *testing.T, r *bufio.Reader, timeout time.Duration, who string) string {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := r.ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-ch:
		require.NoError(t, res.err, "%s: output ended early", who)
		return res.line
	case <-time.After(timeout):
		t.Fatalf("%s did not print a line within %v", who, timeout)
		return ""
	}
}

// wait waits for the child to exit and returns its exit status.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	_ = c.stdin.Close()
	err := c.cmd.Wait()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("waiting for child: %v", err)
	return -1
}

// runChild runs the test binary in a role to completion and returns its
// standard output; a non-zero exit fails the test.
func runChild(t *testing.T, mode string, args ...string) string {
	t.Helper()
	c := startChild(t, mode, args...)
	out, err := io.ReadAll(c.stdout)
	require.NoError(t, err)
	require.Equal(t, 0, c.wait(t), "child %s failed", mode)
	return strings.TrimSpace(string(out))
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// appendLine appends one line to path in a single write.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// skipOrFail skips the test with reason on a normal machine, and fails it
// when requireEnv is set, so that CI never counts a skipped check as a pass.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("required check cannot run (%s=1): %s", requireEnv, reason)
	}
	t.Skip(reason)
}

// needRoot skips (or, in CI, fails) unless the test runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
}

// needCommand returns the path of an external tool, or skips (or, in CI,
// fails) when it is not installed.
func needCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, name+" is not installed")
	}
	return p
}

// sessionPath returns a fresh session file path in a temporary directory.
func sessionPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "session.jsonl")
}
