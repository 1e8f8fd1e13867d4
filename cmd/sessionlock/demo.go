package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sessionlock/sessionlock"
)

// demoTimeout bounds the whole demo, so that a lock held elsewhere cannot
// make it hang.
const demoTimeout = time.Minute

// The owners of the demo's co-tenants.
const (
	heartbeatOwner = "heartbeat" // a goroutine of the demo process
	cronOwner      = "cron"      // a child process: sessionlock append
	scriptOwner    = "script"    // a child process: /bin/sh under sessionlock exec
)

func runDemo(cmd *command, args []string) int {
	fset := cmd.flags()
	dir := fset.String("dir", "", "directory for the session file (default: a new temporary directory, removed afterwards)")
	if ok, status := parse(fset, args); !ok {
		return status
	}
	if fset.NArg() > 0 {
		return cmd.badUsage(fset, "unexpected argument %q", fset.Arg(0))
	}

	if *dir == "" {
		tmp, err := os.MkdirTemp("", "sessionlock-demo-")
		if err != nil {
			return cmd.fail(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()

	if err := demo(ctx, filepath.Join(*dir, "session.jsonl")); err != nil {
		return cmd.fail(err)
	}
	return exitOK
}

// demo runs the two prompt windows and returns an error unless the first
// is accepted with every co-tenant named among its writers and the second
// is a takeover caused by the bypassing write.
func demo(ctx context.Context, session string) error {
	fmt.Println("A controller, co-tenants and one writer that ignores the lock share a session file.")
	fmt.Println()
	fmt.Println("session file:", session)
	fmt.Println("lock file:   ", session+".lock (holds the ledger; the library never deletes it)")

	l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	if err != nil {
		return err
	}
	fence := sessionlock.NewPromptFence(l)
	defer fence.Close()

	fmt.Println()
	fmt.Println("Window 1: only holders of the lock write.")
	step("controller", "acquired the lock at generation %d and opened a prompt fence", l.Epoch())
	if _, err := l.Append([]byte(`{"role":"user","text":"summarise the logs"}` + "\n")); err != nil {
		return err
	}
	step("controller", "appended the user's message")
	if err := fence.ReleaseForPrompt(); err != nil {
		return err
	}
	step("controller", "released the lock for the model prompt")

	gen, err := inGoroutine(func() (uint64, error) {
		l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner(heartbeatOwner))
		if err != nil {
			return 0, err
		}
		_, err = appendLines(l, []string{`{"type":"heartbeat"}`})
		if rerr := l.Release(); err == nil {
			err = rerr
		}
		return l.Epoch(), err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", heartbeatOwner, err)
	}
	step(heartbeatOwner, "a goroutine of this process took the lock and appended (generation %d)", gen)

	out, pid, err := runSelf(ctx, "append", "--owner", cronOwner, session, `{"type":"cron","job":"rotate"}`)
	if err != nil {
		return fmt.Errorf("%s: %w", cronOwner, err)
	}
	step(cronOwner, "child process %d ran `sessionlock append --owner %s`: %s", pid, cronOwner, out)

	expected := []string{heartbeatOwner, cronOwner}
	if runtime.GOOS != "windows" {
		script := `echo "{\"type\":\"script\",\"epoch\":$SESSIONLOCK_EPOCH}" >> "$SESSIONLOCK_SESSION"`
		_, pid, err := runSelf(ctx, "exec", "--owner", scriptOwner, session, "--", "/bin/sh", "-c", script)
		if err != nil {
			return fmt.Errorf("%s: %w", scriptOwner, err)
		}
		step(scriptOwner, "child process %d ran `sessionlock exec --owner %s SESSION -- /bin/sh -c '%s'`", pid, scriptOwner, script)
		expected = append(expected, scriptOwner)
	}

	if err := fence.Reacquire(ctx); err != nil {
		step("controller", "reacquired: %v", err)
		return errors.New("window 1: expected the fence to accept the co-tenants' writes")
	}
	w := fence.Window()
	step("controller", "reacquired at generation %d: accepted", w.Reacquired)
	detail("epoch delta %d (generation %d to %d); tenures that wrote:", w.Delta(), w.Released, w.Reacquired)
	var writers []string
	for _, t := range w.Writers() {
		detail("  generation %d: %q, pid %d, %d -> %d bytes", t.Generation, t.Owner, t.PID, t.SizeBefore, t.SizeAfter)
		writers = append(writers, t.Owner)
	}
	if w.Unrecorded > 0 {
		detail("  and %d tenure(s) no longer in the ledger's history", w.Unrecorded)
	}
	if !slices.Equal(writers, expected) {
		return fmt.Errorf("window 1: expected writers %q, the fence reported %q", expected, writers)
	}

	fmt.Println()
	fmt.Println("Window 2: a writer bypasses the lock.")
	if err := fence.ReleaseForPrompt(); err != nil {
		return err
	}
	step("controller", "released the lock for the model prompt")
	how, err := bypassingAppend(ctx, session, `{"note":"edited by hand"}`)
	if err != nil {
		return fmt.Errorf("bypassing append: %w", err)
	}
	step("bypass", "%s, without the lock", how)

	err = fence.Reacquire(ctx)
	var te *sessionlock.TakeoverError
	if !errors.As(err, &te) {
		step("controller", "reacquired: %v", err)
		return errors.New("window 2: expected a takeover")
	}
	step("controller", "reacquired at generation %d: takeover", te.Reacquired)
	detail("cause:  %s", te.Cause)
	detail("change: %s", te.Change)
	detail("error:  %v", te)
	step("controller", "holds the lock again and would reload the session file now")
	if te.Cause != sessionlock.CauseBypass {
		return fmt.Errorf("window 2: expected cause %s, got %s", sessionlock.CauseBypass, te.Cause)
	}

	fmt.Println()
	fmt.Println("Every verdict as expected: co-tenants accepted, bypassing write caught.")
	return nil
}

// step prints what one actor did.
func step(actor, format string, args ...any) {
	fmt.Printf("  %-11s %s\n", actor, fmt.Sprintf(format, args...))
}

// detail prints a line that belongs to the step above it.
func detail(format string, args ...any) {
	fmt.Printf("  %-11s %s\n", "", fmt.Sprintf(format, args...))
}

// inGoroutine runs f in a goroutine of its own, as a co-tenant of the
// controller would, and waits for its result.
func inGoroutine(f func() (uint64, error)) (uint64, error) {
	type result struct {
		gen uint64
		err error
	}
	done := make(chan result)
	go func() {
		gen, err := f()
		done <- result{gen, err}
	}()
	r := <-done
	return r.gen, r.err
}

// runSelf runs this program with args in a child process, a co-tenant in
// another process, and returns its output and pid.
func runSelf(ctx context.Context, args ...string) (string, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	child := exec.CommandContext(ctx, exe, args...)
	var stderr strings.Builder
	child.Stderr = &stderr
	out, err := child.Output()
	pid := 0
	if child.Process != nil {
		pid = child.Process.Pid
	}
	if err != nil {
		return "", pid, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), pid, nil
}

// bypassingAppend appends line to session without taking the lock and says
// how it did so.
func bypassingAppend(ctx context.Context, session, line string) (string, error) {
	if runtime.GOOS == "windows" {
		// There is no /bin/sh to call here; Go's os package ignores the
		// lock just as well.
		f, err := os.OpenFile(session, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		if _, err := f.WriteString(line + "\n"); err != nil {
			f.Close()
			return "", err
		}
		return "appended with Go's os package (no /bin/sh on Windows)", f.Close()
	}
	echo := "echo '" + line + "'"
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", echo+` >> "$1"`, "sh", session)
	if out, err := sh.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return fmt.Sprintf("/bin/sh ran: %s >> %s", echo, filepath.Base(session)), nil
}
