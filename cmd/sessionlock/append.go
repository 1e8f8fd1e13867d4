package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/sessionlock/sessionlock"
)

func runAppend(cmd *command, args []string) int {
	fset := cmd.flags()
	owner := fset.String("owner", "", "owner `NAME` recorded in the ledger for this tenure")
	asJSON := fset.Bool("json", false, "every line must be one valid JSON value, or nothing is written")
	timeout := timeoutFlag(fset)
	if ok, status := parse(fset, args); !ok {
		return status
	}
	if fset.NArg() == 0 {
		return cmd.badUsage(fset, "need a SESSION")
	}
	if *timeout < 0 {
		return cmd.badUsage(fset, "--timeout must not be negative")
	}
	session, lines := fset.Arg(0), fset.Args()[1:]

	// Caught from here on, so that a signal cannot end the process in
	// the middle of its tenure; one that comes while waiting ends the wait.
	sigs := notifySignals(waitSignals...)
	defer signal.Stop(sigs)

	st, err := sessionlock.Inspect(session)
	if err != nil {
		return cmd.fail(err)
	}
	if len(lines) == 0 {
		if lines, err = readLines(os.Stdin); err != nil {
			return cmd.fail(fmt.Errorf("reading standard input: %w", err))
		}
	}
	if *asJSON {
		if err := checkJSONLines(lines); err != nil {
			return cmd.fail(fmt.Errorf("%w; nothing written", err))
		}
	}
	if len(lines) == 0 {
		return exitOK
	}
	if err := insideOwnTenure(st); err != nil {
		return cmd.fail(err)
	}

	l, err := acquire(session, *owner, *timeout, sigs)
	if err != nil {
		return cmd.acquireFailed(err, *timeout)
	}
	n, err := appendLines(l, lines)
	if rerr := l.Release(); err == nil {
		err = rerr
	}
	if err != nil {
		return cmd.fail(fmt.Errorf("appended %d of %d line(s) at generation %d, then: %w", n, len(lines), l.Epoch(), err))
	}
	fmt.Printf("appended %d line(s) at generation %d\n", n, l.Epoch())
	return exitOK
}

// readLines reads r to the end and splits it into lines. A line ends at a
// newline, and a carriage return before the newline is dropped; a last line
// without a newline still counts.
func readLines(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimSuffix(line, "\r")
	}
	return lines, nil
}

// checkJSONLines returns an error naming the first line (counted from 1)
// that is not one valid JSON value on one line.
func checkJSONLines(lines []string) error {
	for i, line := range lines {
		if strings.ContainsAny(line, "\n\r") {
			return fmt.Errorf("line %d is not valid JSON Lines: it contains a line break", i+1)
		}
		if !json.Valid([]byte(line)) {
			// Unmarshal says where and why.
			why := json.Unmarshal([]byte(line), new(json.RawMessage))
			if why == nil {
				why = fmt.Errorf("not one JSON value")
			}
			return fmt.Errorf("line %d is not valid JSON: %v: %s", i+1, why, clipLine(line))
		}
	}
	return nil
}

// clipLine shortens a line for an error message.
func clipLine(line string) string {
	const maxShown = 60
	if len(line) > maxShown {
		line = line[:maxShown] + "..."
	}
	return fmt.Sprintf("%q", line)
}

// appendLines appends each line and a newline to the session file with
// l.Append, one write per line, and returns how many it wrote.
func appendLines(l *sessionlock.Lock, lines []string) (int, error) {
	var buf bytes.Buffer
	for i, line := range lines {
		buf.Reset()
		buf.WriteString(line)
		buf.WriteByte('\n')
		if _, err := l.Append(buf.Bytes()); err != nil {
			return i, err
		}
	}
	return len(lines), nil
}
