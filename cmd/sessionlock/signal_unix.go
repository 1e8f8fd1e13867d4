//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// forwardedSignals are the signals exec passes on to COMMAND. Without them
// caught, SIGTERM or SIGHUP would end sessionlock mid-tenure and leave an
// open tenure in the ledger, which the next holder reads as a death.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// waitSignals end a wait for the lock in append.
var waitSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// forwardSignal sends s to p. A child that has already ended is not an
// error.
func forwardSignal(p *os.Process, s os.Signal) {
	if err := p.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
		fmt.Fprintf(os.Stderr, "sessionlock exec: passing on %v: %v\n", s, err)
	}
}

// signalled returns the signal that ended the process, if one did.
func signalled(ps *os.ProcessState) (int, bool) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return int(ws.Signal()), true
}
