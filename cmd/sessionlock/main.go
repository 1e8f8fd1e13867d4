// Command sessionlock works with session write locks from the shell.
//
// Usage:
//
//	sessionlock demo [--dir DIR]
//	sessionlock append [--owner NAME] SESSION LINE...
//
// demo walks through two prompt windows of a controller: one in which only
// lock holders write (a co-tenant goroutine and a co-tenant child process),
// which the fence accepts, and one in which a shell command appends without
// the lock, which the fence reports as a takeover. It exits 0 when both
// verdicts are the expected ones and 1 otherwise.
//
// append takes one tenure of the lock on SESSION and appends each LINE and
// a newline to it with Lock.Append, one write per line, so that a script
// can write as a co-tenant.
//
// Bad usage exits with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sessionlock/sessionlock"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand. run receives the arguments after the
// subcommand's name and returns the exit status.
type command struct {
	name    string
	args    string // synopsis of flags and operands
	summary string
	run     func(cmd *command, args []string) int
}

// commands lists the subcommands in the order usage shows them.
var commands = []*command{
	{
		name:    "demo",
		args:    "[--dir DIR]",
		summary: "show a prompt fence accept co-tenants and catch a bypassing write",
		run:     runDemo,
	},
	{
		name:    "append",
		args:    "[--owner NAME] SESSION LINE...",
		summary: "append lines to SESSION under one tenure of its lock",
		run:     runAppend,
	},
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(os.Stdout)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == args[0] {
			return cmd.run(cmd, args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "sessionlock: unknown command %q\n", args[0])
	usage(os.Stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sessionlock COMMAND [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", cmd.name, cmd.summary)
		fmt.Fprintf(w, "          sessionlock %s %s\n", cmd.name, cmd.args)
	}
}

// flags returns a flag set for cmd that reports errors and usage on
// standard error.
func (cmd *command) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("sessionlock "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: sessionlock %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. When it returns false, the command should
// exit with the returned status: 0 after -h, 2 after a bad flag.
func parse(fs *flag.FlagSet, args []string) (ok bool, status int) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return true, exitOK
	case errors.Is(err, flag.ErrHelp):
		return false, exitOK
	default:
		return false, exitUsage
	}
}

// badUsage reports a usage error for cmd and returns exitUsage.
func (cmd *command) badUsage(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "sessionlock %s: %s\n", cmd.name, fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}

func runAppend(cmd *command, args []string) int {
	fs := cmd.flags()
	owner := fs.String("owner", "", "owner name recorded in the ledger for this tenure")
	if ok, status := parse(fs, args); !ok {
		return status
	}
	if fs.NArg() < 2 {
		return cmd.badUsage(fs, "need a session file and at least one line")
	}
	session, lines := fs.Arg(0), fs.Args()[1:]

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	gen, err := appendUnderLock(ctx, session, *owner, lines)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sessionlock append: %v\n", err)
		return exitFailure
	}
	fmt.Printf("appended %d line(s) at generation %d\n", len(lines), gen)
	return exitOK
}

// appendUnderLock appends lines to session in one tenure and returns the
// tenure's generation.
func appendUnderLock(ctx context.Context, session, owner string, lines []string) (uint64, error) {
	l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner(owner))
	if err != nil {
		return 0, err
	}
	for _, line := range lines {
		if _, err = l.Append([]byte(line + "\n")); err != nil {
			break
		}
	}
	if rerr := l.Release(); err == nil {
		err = rerr
	}
	return l.Epoch(), err
}

// demoTimeout bounds the whole demo, so that a lock held elsewhere cannot
// make it hang.
const demoTimeout = time.Minute

func runDemo(cmd *command, args []string) int {
	fs := cmd.flags()
	dir := fs.String("dir", "", "directory for the session file (default: a new temporary directory, removed afterwards)")
	if ok, status := parse(fs, args); !ok {
		return status
	}
	if fs.NArg() > 0 {
		return cmd.badUsage(fs, "unexpected argument %q", fs.Arg(0))
	}

	if *dir == "" {
		tmp, err := os.MkdirTemp("", "sessionlock-demo-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "sessionlock demo: %v\n", err)
			return exitFailure
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()

	if err := demo(ctx, filepath.Join(*dir, "session.jsonl")); err != nil {
		fmt.Fprintf(os.Stderr, "sessionlock demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// demo runs the two prompt windows and returns an error unless the first
// is accepted and the second is a takeover caused by the bypassing write.
func demo(ctx context.Context, session string) error {
	fmt.Println("A controller, two co-tenants and one writer that ignores the lock share a session file.")
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
		return appendUnderLock(ctx, session, "heartbeat", []string{`{"type":"heartbeat"}`})
	})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	step("heartbeat", "a goroutine of this process took the lock and appended (generation %d)", gen)

	out, pid, err := appendInChild(ctx, session, "cron", `{"type":"cron","job":"rotate"}`)
	if err != nil {
		return fmt.Errorf("cron: %w", err)
	}
	step("cron", "child process %d ran `sessionlock append --owner cron`: %s", pid, out)

	if err := fence.Reacquire(ctx); err != nil {
		step("controller", "reacquired: %v", err)
		return errors.New("window 1: expected the fence to accept the co-tenants' writes")
	}
	w := fence.Window()
	step("controller", "reacquired at generation %d: accepted", w.Reacquired)
	detail("epoch delta %d (generation %d to %d); tenures that wrote:", w.Delta(), w.Released, w.Reacquired)
	for _, t := range w.Writers() {
		detail("  generation %d: %q, pid %d, %d -> %d bytes", t.Generation, t.Owner, t.PID, t.SizeBefore, t.SizeAfter)
	}
	if w.Unrecorded > 0 {
		detail("  and %d tenure(s) no longer in the ledger's history", w.Unrecorded)
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
	fmt.Println("Both verdicts as expected: co-tenants accepted, bypassing write caught.")
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

// appendInChild runs this program's append command in a child process, a
// co-tenant in another process, and returns its output and pid.
func appendInChild(ctx context.Context, session, owner, line string) (string, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	child := exec.CommandContext(ctx, exe, "append", "--owner", owner, session, line)
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
