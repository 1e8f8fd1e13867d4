// Command sessionlock works with session write locks from the shell. It
// shows who holds a session file's lock and what the ledger remembers, runs
// a command or appends lines as one tenure of the lock, and demonstrates a
// prompt fence.
//
// Usage:
//
//	sessionlock status [--json] SESSION...
//	sessionlock exec [--owner NAME] [--timeout DURATION] SESSION -- COMMAND [ARGS...]
//	sessionlock append [--owner NAME] [--json] [--timeout DURATION] SESSION [LINE...]
//	sessionlock demo [--dir DIR]
//
// Flags come before SESSION. A DURATION is written as Go writes it (500ms,
// 2s, 1m30s); without --timeout, or with 0, the wait for the lock has no
// limit. --owner names the holder in the ledger, where status, waiting
// processes and prompt fences show it. A SESSION's directory must exist; the
// file itself need not.
//
// # status
//
// status reads the lock of each SESSION without taking it and without
// creating anything: whether some process holds the lock now (a
// non-blocking probe), the holder the ledger names (owner, pid, host, since
// when, generation) and whether that pid is alive on this host, the recent
// tenures (generation, owner, pid, whether it wrote, sizes, release time),
// the last break in the chain with its cause and change, the fingerprint
// mode and the file system, and why the ledger could not be read, if it
// could not. A lock that is held with no holder in the ledger is held by a
// process that does not keep the ledger, such as flock(1); a holder in the
// ledger whose lock is not held died or lost its lock mid-tenure, and the
// next tenure will close its record. A break is recorded by the tenure that
// finds it, so a write that bypassed the lock shows once someone has taken
// the lock after it. The answer can be stale by the time it is printed.
//
// Sessions that cannot be inspected are reported on standard error; the
// others are still printed, and the exit status is 1.
//
// # JSON output
//
// status --json prints one JSON array with one object per SESSION, in the
// order given. Field names are snake_case; times are RFC 3339 strings in
// UTC with fractional seconds, such as "2026-12-03T15:58:19.123456789Z";
// sizes are bytes. Every object has "version": 1; a change that would break
// a reader of these fields comes with a new version. An object for a session
// that was inspected has every field below, with null for nothing to report:
//
//	{
//	  "version": 1,
//	  "argument": "s.jsonl",                  SESSION as given
//	  "session_file": "/data/s.jsonl",        canonical path
//	  "lock_file": "/data/s.jsonl.lock",
//	  "lock_file_exists": true,               false before the first tenure
//	  "held": true,                           the file lock was held at the probe
//	  "holder": {                             the open tenure in the ledger, or null
//	    "owner": "cron",                      "" when the holder gave no name
//	    "pid": 4242,
//	    "host": "gw1",
//	    "process_start": "2026-...Z",         or null
//	    "since": "2026-...Z",                 when the tenure began
//	    "generation": 7,
//	    "on_this_host": true,
//	    "alive": true                         pid exists; null when on another host
//	  },
//	  "generation": 7,                        highest generation in the ledger
//	  "fingerprint_mode": "stat",             "stat" or "content", or null
//	  "ledger_error": null,                   why the ledger could not be read
//	  "tenures": [                            closed tenures, oldest first; [] if none
//	    {
//	      "generation": 6,
//	      "owner": "heartbeat",
//	      "pid": 4100,
//	      "host": "gw1",
//	      "since": "2026-...Z",
//	      "released": "2026-...Z",            null when the holder died
//	      "wrote": true,                      the session file changed in the tenure
//	      "size_before": 120,
//	      "size_after": 141,
//	      "died": false,                      closed by the next acquirer
//	      "fingerprint_mode": "stat"          or null
//	    }
//	  ],
//	  "last_break": {                         the most recent break, or null
//	    "generation": 5,                      the tenure that found it
//	    "cause": "bypass",                    as sessionlock.Cause names it
//	    "change": "appended",                 as sessionlock.Change names it, or null
//	    "at": "2026-...Z",
//	    "detail": "changed while no tenure was open",
//	    "dead_holder": null                   for "holder-died": owner, pid, host,
//	  },                                      process_start and since, as in "holder"
//	  "file_system": {
//	    "type": "ext4",
//	    "remote": false,                      network or FUSE: content is verified
//	    "fine_timestamps": null               true or false once probed; status
//	  }                                       itself never probes (it writes nothing)
//	}
//
// A session that could not be inspected gives an object with only
// "version", "argument" and "error" (the message that standard error also
// shows); no other object has "error".
//
// # exec
//
// exec waits for the lock on SESSION (at most --timeout), then runs COMMAND
// with ARGS, its standard input, output and error passed through, as one
// tenure of the lock: the library keeps the ledger, so the tenure is
// recorded with its owner, and what COMMAND writes to the session file is
// accepted by prompt fences as a co-tenant's write. The lock is released
// when COMMAND ends, however it ends. COMMAND finds the canonical session
// path in SESSIONLOCK_SESSION and the tenure's generation in
// SESSIONLOCK_EPOCH:
//
//	sessionlock exec --owner backup s.jsonl -- sh -c 'cp "$SESSIONLOCK_SESSION" /backup/'
//
// COMMAND must not wait for the same lock (for example with sessionlock
// append on the same file): the lock is not released until it ends. append
// and exec notice that from the environment and fail at once instead of
// waiting forever.
//
// SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to sessionlock are passed on to
// COMMAND, and sessionlock waits for it to end; a Ctrl-C at a terminal
// reaches COMMAND directly too, as it reaches every process of the
// foreground job. On Windows, Ctrl-C reaches COMMAND through the console
// and sessionlock waits for it.
//
// # append
//
// append appends each LINE and a newline to SESSION under one tenure of the
// lock, one write per line with Lock.Append, so that writers sharing the
// file through the lock never see a torn line. Without LINE operands it
// reads lines from standard input, to the end, before it takes the lock; a
// carriage return before a newline is dropped. Empty input writes nothing
// and exits 0. With --json, every line must be one valid JSON value (and
// may not contain a newline): they are all checked before the lock is
// taken, and if one is not, nothing is written, and standard error names
// the line by number.
//
// # demo
//
// demo walks a controller through two prompt windows in a new temporary
// directory (or in DIR). In the first, only holders of the lock write: a
// goroutine, a child process running sessionlock append, and, on Unix, a
// child process running /bin/sh under sessionlock exec. The fence accepts
// the window and names the tenures that wrote. In the second, /bin/sh
// appends without the lock, and the fence reports a takeover caused by a
// bypassing write.
//
// # Exit status
//
//	0    success; demo: every verdict was the expected one
//	1    failure (bad session path, I/O error, invalid JSON with --json,
//	     interrupted while waiting, a demo verdict not as expected)
//	2    usage error: unknown command or flag, missing operand, no -- before
//	     COMMAND
//	3    --timeout passed while waiting for the lock; standard error names
//	     the holder
//	126  exec: COMMAND was found but could not be run
//	127  exec: COMMAND was not found
//
// Otherwise exec exits with COMMAND's exit status, or 128+N when signal N
// ended it; if COMMAND succeeded but the lock could not be released
// cleanly, exec exits 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Exit statuses.
const (
	exitOK            = 0
	exitFailure       = 1
	exitUsage         = 2
	exitTimeout       = 3
	exitCannotExecute = 126
	exitNotFound      = 127
	exitSignalBase    = 128 // exec: 128+N when signal N ended COMMAND
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
		name:    "status",
		args:    "[--json] SESSION...",
		summary: "show who holds each SESSION's lock and what its ledger remembers",
		run:     runStatus,
	},
	{
		name:    "exec",
		args:    "[--owner NAME] [--timeout DURATION] SESSION -- COMMAND [ARGS...]",
		summary: "run COMMAND as one tenure of SESSION's lock",
		run:     runExec,
	},
	{
		name:    "append",
		args:    "[--owner NAME] [--json] [--timeout DURATION] SESSION [LINE...]",
		summary: "append lines (arguments or standard input) to SESSION under one tenure",
		run:     runAppend,
	},
	{
		name:    "demo",
		args:    "[--dir DIR]",
		summary: "show a prompt fence accept co-tenants and catch a bypassing write",
		run:     runDemo,
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
	fmt.Fprintln(w)
	fmt.Fprintln(w, "exit status: 0 ok, 1 failure, 2 usage, 3 timed out waiting for the lock;")
	fmt.Fprintln(w, "exec: COMMAND's status, 128+N for signal N, 126 cannot run, 127 not found")
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

// timeoutFlag adds --timeout to fs.
func timeoutFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("timeout", 0, "give up waiting for the lock after `DURATION` (exit status 3); 0 waits as long as it takes")
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

// fail reports err for cmd on standard error and returns exitFailure.
func (cmd *command) fail(err error) int {
	fmt.Fprintf(os.Stderr, "sessionlock %s: %v\n", cmd.name, err)
	return exitFailure
}
