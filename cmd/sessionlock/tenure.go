package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/sessionlock/sessionlock"
)

// The environment that exec gives COMMAND.
const (
	envSession = "SESSIONLOCK_SESSION" // canonical path of the session file
	envEpoch   = "SESSIONLOCK_EPOCH"   // generation of the tenure
)

// notifySignals starts catching sigs and returns the channel they arrive
// on. The caller stops with signal.Stop. While they are caught, a signal
// cannot end the process in the middle of a tenure: the command decides
// what it means (give up waiting, pass it on to a child).
func notifySignals(sigs ...os.Signal) chan os.Signal {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, sigs...)
	return ch
}

// interruptedError reports a wait for the lock ended by a signal.
type interruptedError struct {
	signal  os.Signal
	session string
	wait    *sessionlock.WaitError // nil when the lock was taken as the signal came
}

func (e *interruptedError) Error() string {
	if e.wait == nil {
		return fmt.Sprintf("interrupted (%v) while taking the lock on %s; released it unused", e.signal, e.session)
	}
	return fmt.Sprintf("interrupted (%v) while waiting for %s; %s", e.signal, e.wait.SessionFile, holderOf(e.wait))
}

func (e *interruptedError) Unwrap() error {
	if e.wait == nil {
		return context.Canceled
	}
	return e.wait
}

// acquire takes a tenure of the lock on session for owner. It waits at most
// timeout (no limit when 0) and gives up when a signal arrives on sigs;
// then the error is an *interruptedError. A signal that arrives as the
// lock is taken still gives up: the tenure is released unused.
func acquire(session, owner string, timeout time.Duration, sigs <-chan os.Signal) (*sessionlock.Lock, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	type result struct {
		lock *sessionlock.Lock
		err  error
	}
	done := make(chan result, 1)
	go func() {
		l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner(owner))
		done <- result{l, err}
	}()

	var caught os.Signal
	for {
		select {
		case s := <-sigs:
			if caught == nil {
				caught = s
				cancel()
			}
		case r := <-done:
			if caught == nil {
				return r.lock, r.err
			}
			ie := &interruptedError{signal: caught, session: session}
			if r.err == nil {
				ie.session = r.lock.SessionFile()
				if err := r.lock.Release(); err != nil {
					return nil, err
				}
			} else if !errors.As(r.err, &ie.wait) {
				return nil, r.err
			}
			return nil, ie
		}
	}
}

// acquireFailed reports why acquire failed and returns the exit status:
// exitTimeout when the timeout passed (naming the holder), exitFailure
// otherwise.
func (cmd *command) acquireFailed(err error, timeout time.Duration) int {
	var we *sessionlock.WaitError
	if errors.As(err, &we) && errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "sessionlock %s: timed out after %v waiting for %s; %s\n", cmd.name, timeout, we.SessionFile, holderOf(we))
		return exitTimeout
	}
	return cmd.fail(err)
}

// holderOf says who held the lock when the wait ended, as far as the
// ledger shows.
func holderOf(we *sessionlock.WaitError) string {
	if we.Holder == nil {
		return "holder unknown: the ledger shows no open tenure (a process that does not keep the ledger, such as flock(1), may hold the lock)"
	}
	return fmt.Sprintf("held by %s (generation %d)", we.Holder, we.Generation)
}

// insideOwnTenure returns an error when this process runs under
// sessionlock exec on the session that st describes and that tenure is
// still open: the lock is not released until this process's ancestor ends,
// so waiting for it would never end.
func insideOwnTenure(st *sessionlock.Status) error {
	if os.Getenv(envSession) != st.SessionFile {
		return nil
	}
	epoch, err := strconv.ParseUint(os.Getenv(envEpoch), 10, 64)
	if err != nil || !st.Held || st.Holder == nil || st.HolderGeneration != epoch {
		return nil
	}
	return fmt.Errorf("this process runs under `sessionlock exec` on %s, whose tenure (generation %d, %s) holds the lock until its command ends, "+
		"so waiting for the lock would never end; write to $%s directly", st.SessionFile, epoch, st.Holder, envSession)
}
