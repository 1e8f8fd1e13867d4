package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"

	"github.com/sessionlock/sessionlock"
)

func runExec(cmd *command, args []string) int {
	fset := cmd.flags()
	owner := fset.String("owner", "", "owner `NAME` recorded in the ledger for this tenure")
	timeout := timeoutFlag(fset)
	before, argv, haveDashes := splitAtDashes(args)
	if ok, status := parse(fset, before); !ok {
		return status
	}
	switch {
	case fset.NArg() == 0:
		return cmd.badUsage(fset, "need a SESSION, then -- and a COMMAND")
	case !haveDashes:
		return cmd.badUsage(fset, "need -- between SESSION and COMMAND")
	case fset.NArg() > 1:
		return cmd.badUsage(fset, "unexpected argument %q after SESSION (flags go before SESSION; -- goes before COMMAND)", fset.Arg(1))
	case len(argv) == 0:
		return cmd.badUsage(fset, "no COMMAND after --")
	case *timeout < 0:
		return cmd.badUsage(fset, "--timeout must not be negative")
	}
	session := fset.Arg(0)

	// From here on, signals are the command's to handle: while waiting
	// they end the wait, while COMMAND runs they are passed on to it.
	sigs := notifySignals(forwardedSignals...)
	defer signal.Stop(sigs)

	st, err := sessionlock.Inspect(session)
	if err != nil {
		return cmd.fail(err)
	}
	if err := insideOwnTenure(st); err != nil {
		return cmd.fail(err)
	}

	// A COMMAND that cannot run is known before the lock is taken: no
	// tenure for nothing. (exec.Command looks up only names without a
	// slash; LookPath also checks a path that has one.)
	if _, err := exec.LookPath(argv[0]); err != nil && !errors.Is(err, exec.ErrDot) {
		return cannotRun(err)
	}
	child := exec.Command(argv[0], argv[1:]...)
	if errors.Is(child.Err, exec.ErrDot) {
		// Like a shell, run a program that $PATH finds in the current
		// directory.
		child.Err = nil
	}

	l, err := acquire(session, *owner, *timeout, sigs)
	if err != nil {
		return cmd.acquireFailed(err, *timeout)
	}
	return runInTenure(l, child, sigs)
}

// splitAtDashes splits args at the first "--": the flags and SESSION
// before it, COMMAND and its arguments after it.
func splitAtDashes(args []string) (before, after []string, found bool) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

// runInTenure runs child while l is held, passing on the signals that
// arrive on sigs, and releases l when child ends or cannot start. It
// returns child's exit status.
func runInTenure(l *sessionlock.Lock, child *exec.Cmd, sigs <-chan os.Signal) (status int) {
	defer func() {
		if err := l.Release(); err != nil {
			fmt.Fprintf(os.Stderr, "sessionlock exec: releasing the lock: %v\n", err)
			if status == exitOK {
				status = exitFailure
			}
		}
	}()

	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = append(os.Environ(),
		envSession+"="+l.SessionFile(),
		envEpoch+"="+strconv.FormatUint(l.Epoch(), 10))
	if err := child.Start(); err != nil {
		return cannotRun(err)
	}

	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			forwardSignal(child.Process, s)
		case err := <-done:
			return childStatus(child, err)
		}
	}
}

// childStatus turns the result of child.Wait into an exit status: the
// child's own, or 128+N when signal N ended it.
func childStatus(child *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "sessionlock exec: %v\n", err)
		return exitFailure
	}
	if sig, ok := signalled(child.ProcessState); ok {
		return exitSignalBase + sig
	}
	return child.ProcessState.ExitCode()
}

// cannotRun reports a COMMAND that could not be started and returns the
// status a shell would: 127 when it was not found, 126 otherwise.
func cannotRun(err error) int {
	fmt.Fprintf(os.Stderr, "sessionlock exec: %v\n", err)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitCannotExecute
}
