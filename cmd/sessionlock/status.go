package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessionlock/sessionlock"
)

// statusVersion is the "version" of every object that status --json
// prints. Bump it when a change would break a reader of version 1: a field
// removed, renamed or given another meaning or type.
const statusVersion = 1

// humanTenures is how many of the recent tenures the human-readable status
// lists; --json lists all that the ledger holds.
const humanTenures = 10

func runStatus(cmd *command, args []string) int {
	fset := cmd.flags()
	asJSON := fset.Bool("json", false, "print a JSON array, one object per SESSION (schema version 1; see the command's documentation)")
	if ok, status := parse(fset, args); !ok {
		return status
	}
	if fset.NArg() == 0 {
		return cmd.badUsage(fset, "need at least one SESSION")
	}

	status := exitOK
	var out []any
	for i, session := range fset.Args() {
		st, err := sessionlock.Inspect(session)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sessionlock status: %v\n", err)
			status = exitFailure
			if *asJSON {
				out = append(out, statusErrorJSON{Version: statusVersion, Argument: session, Error: err.Error()})
			}
			continue
		}
		if *asJSON {
			out = append(out, statusToJSON(session, st))
			continue
		}
		if i > 0 {
			fmt.Println()
		}
		printStatus(os.Stdout, st, time.Now())
	}

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if out == nil {
			out = []any{}
		}
		if err := enc.Encode(out); err != nil {
			return cmd.fail(err)
		}
	}
	return status
}

// The JSON schema, version 1. Nothing here is omitted when empty: a field
// with nothing to report is null, and a list with nothing in it is [].

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
}

type statusErrorJSON struct {
	Version  int    `json:"version"`
	Argument string `json:"argument"`
	Error    string `json:"error"`
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

type deadHolderJSON struct {
	Owner        string  `json:"owner"`
	PID          int     `json:"pid"`
	Host         string  `json:"host"`
	ProcessStart *string `json:"process_start"`
	Since        *string `json:"since"`
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
	DeadHolder *deadHolderJSON `json:"dead_holder"`
}

type fileSystemJSON struct {
	Type           string `json:"type"`
	Remote         bool   `json:"remote"`
	FineTimestamps *bool  `json:"fine_timestamps"`
}

func statusToJSON(argument string, st *sessionlock.Status) statusJSON {
	out := statusJSON{
		Version:         statusVersion,
		Argument:        argument,
		SessionFile:     st.SessionFile,
		LockFile:        st.LockFile,
		LockFileExists:  st.LockFileExists,
		Held:            st.Held,
		Generation:      st.Generation,
		FingerprintMode: nonEmpty(st.Mode),
		LedgerError:     nonEmpty(st.LedgerError),
		Tenures:         []tenureJSON{},
		FileSystem:      fileSystemJSON{Type: st.FileSystem.Type, Remote: st.FileSystem.Remote},
	}
	if st.FileSystem.Probed {
		fine := st.FileSystem.FineTimestamps
		out.FileSystem.FineTimestamps = &fine
	}
	if h := st.Holder; h != nil {
		out.Holder = &holderJSON{Owner: h.Owner, PID: h.PID, Host: h.Host, ProcessStart: timeJSON(h.ProcessStart),
			Since: timeJSON(h.Since), Generation: st.HolderGeneration, OnThisHost: st.HolderOnThisHost}
		if st.HolderOnThisHost {
			alive := st.HolderAlive
			out.Holder.Alive = &alive
		}
	}
	for _, t := range st.Tenures {
		out.Tenures = append(out.Tenures, tenureJSON{Generation: t.Generation, Owner: t.Owner, PID: t.PID, Host: t.Host,
			Since: timeJSON(t.Since), Released: timeJSON(t.Released), Wrote: t.Wrote,
			SizeBefore: t.SizeBefore, SizeAfter: t.SizeAfter, Died: t.Died, FingerprintMode: nonEmpty(t.Mode)})
	}
	if b := st.LastBreak; b != nil {
		out.LastBreak = &breakJSON{Generation: b.Generation, Cause: causeName(b.Cause), Change: changeName(b.Change),
			At: timeJSON(b.At), Detail: b.Detail}
		if d := b.DeadHolder; d != nil {
			out.LastBreak.DeadHolder = &deadHolderJSON{Owner: d.Owner, PID: d.PID, Host: d.Host,
				ProcessStart: timeJSON(d.ProcessStart), Since: timeJSON(d.Since)}
		}
	}
	return out
}

// timeJSON formats t as RFC 3339 in UTC with fractional seconds, or nil for
// the zero time.
func timeJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// causeName and changeName return nil for a value the library could not
// name (an empty or unknown record in the ledger).
func causeName(c sessionlock.Cause) *string {
	if c <= 0 {
		return nil
	}
	return nonEmpty(c.String())
}

func changeName(c sessionlock.Change) *string {
	if c <= 0 {
		return nil
	}
	return nonEmpty(c.String())
}

// printStatus writes st for a person to read.
func printStatus(w io.Writer, st *sessionlock.Status, now time.Time) {
	fmt.Fprintf(w, "%s\n", st.SessionFile)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(key, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", key, fmt.Sprintf(format, args...))
	}

	row("lock file", "%s", st.LockFile)
	row("held", "%s", describeHeld(st, now))
	if h := st.Holder; h != nil {
		switch {
		case !st.HolderOnThisHost:
			row("holder pid", "%d runs on host %q, not this one: cannot tell whether it is alive", h.PID, h.Host)
		case st.HolderAlive:
			row("holder pid", "%d is alive on this host", h.PID)
		default:
			row("holder pid", "%d is not running on this host", h.PID)
		}
	}
	row("generation", "%d", st.Generation)
	mode := st.Mode
	if mode == "" {
		mode = "none recorded"
	}
	row("mode", "%s (file system %s)", mode, describeFileSystem(st.FileSystem))
	switch {
	case !st.LockFileExists:
		row("ledger", "none yet")
	case st.LedgerError != "":
		row("ledger", "unreadable: %s (the next tenure records unknown history and starts a fresh ledger)", st.LedgerError)
	default:
		row("ledger", "ok")
	}
	row("last break", "%s", describeBreak(st.LastBreak))
	if len(st.Tenures) == 0 {
		row("tenures", "none recorded")
		tw.Flush()
		return
	}
	shown := st.Tenures[max(0, len(st.Tenures)-humanTenures):]
	row("tenures", "last %d of %d recorded, oldest first", len(shown), len(st.Tenures))
	tw.Flush()

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    GEN\tOWNER\tPID\tHOST\tWROTE\tSIZE\tRELEASED")
	for _, t := range shown {
		wrote := "no"
		if t.Wrote {
			wrote = "yes"
		}
		released := formatTime(t.Released)
		if t.Died {
			released = "never: holder died"
		}
		fmt.Fprintf(tw, "    %d\t%s\t%d\t%s\t%s\t%d -> %d\t%s\n",
			t.Generation, ownerName(t.Owner), t.PID, t.Host, wrote, t.SizeBefore, t.SizeAfter, released)
	}
	tw.Flush()
}

// describeHeld says whether the lock is held and by whom.
func describeHeld(st *sessionlock.Status, now time.Time) string {
	h := st.Holder
	switch {
	case !st.LockFileExists:
		return "no (no lock file: never locked)"
	case st.Held && h != nil:
		return fmt.Sprintf("yes, by %s (generation %d, for %s)", h, st.HolderGeneration, now.Sub(h.Since).Round(time.Second))
	case st.Held:
		return "yes, by a process that does not keep the ledger (such as flock(1))"
	case h != nil:
		return fmt.Sprintf("no, but the ledger shows an open tenure: %s (generation %d) died or lost its lock mid-tenure; the next tenure closes it", h, st.HolderGeneration)
	}
	return "no"
}

func describeFileSystem(fsys sessionlock.FileSystem) string {
	var traits []string
	if fsys.Remote {
		traits = append(traits, "network or FUSE")
	} else {
		traits = append(traits, "local")
	}
	switch {
	case !fsys.Probed:
		traits = append(traits, "timestamps not probed")
	case fsys.FineTimestamps:
		traits = append(traits, "fine timestamps")
	default:
		traits = append(traits, "coarse timestamps")
	}
	return fmt.Sprintf("%s: %s", fsys.Type, strings.Join(traits, ", "))
}

func describeBreak(b *sessionlock.Break) string {
	if b == nil {
		return "none"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "generation %d", b.Generation)
	if c := causeName(b.Cause); c != nil {
		fmt.Fprintf(&s, ": %s", *c)
	}
	if c := changeName(b.Change); c != nil {
		fmt.Fprintf(&s, ", file %s", *c)
	}
	if !b.At.IsZero() {
		fmt.Fprintf(&s, ", at %s", formatTime(b.At))
	}
	if b.DeadHolder != nil {
		fmt.Fprintf(&s, ", dead holder %s", b.DeadHolder)
	}
	if b.Detail != "" {
		fmt.Fprintf(&s, " (%s)", b.Detail)
	}
	return s.String()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ownerName(owner string) string {
	if owner == "" {
		return "(no owner)"
	}
	return owner
}
