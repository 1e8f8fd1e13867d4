//go:build !unix

package main

import (
	"os"
)

// forwardedSignals are the signals exec catches while COMMAND runs. On
// Windows a Ctrl-C reaches every process attached to the console, COMMAND
// included, so sessionlock only has to survive it and wait.
var forwardedSignals = []os.Signal{os.Interrupt}

// waitSignals end a wait for the lock in append.
var waitSignals = []os.Signal{os.Interrupt}

// forwardSignal does nothing: COMMAND got the console's Ctrl-C itself, and
// os.Process.Signal cannot send an interrupt here.
func forwardSignal(*os.Process, os.Signal) {}

// signalled reports no signal: exit codes say everything here.
func signalled(*os.ProcessState) (int, bool) { return 0, false }
