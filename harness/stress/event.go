package stress

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// Event kinds, as written to the event logs.
const (
	evAcquired  = "acquired"  // a tenure began: T0 before the acquire call, T1 after it returned
	evAck       = "ack"       // Lock.Append returned nil for line Seq
	evReleasing = "releasing" // Release (or Close) is about to be called
	evReleased  = "released"  // the tenure ended: T0 before the call, T1 after it returned
	evWindow    = "window"    // a prompt window closed (see WindowRecord)
	evInject    = "inject"    // the injector changed a file (see InjectRecord)
	evKill      = "kill"      // the harness killed a process: T0 before SIGKILL, T1 after it was reaped
	evError     = "error"     // an operation failed where it must not
)

// Event is one line of an event log. Which fields are set depends on Kind.
type Event struct {
	Kind string `json:"k"`
	// Worker is the goroutine that acted ("p3.1": process p3, goroutine
	// 1), or the process for kill events.
	Worker string `json:"w,omitempty"`
	// Tenure numbers a worker's tenures from 1.
	Tenure  int    `json:"n,omitempty"`
	Session string `json:"s,omitempty"`
	Gen     uint64 `json:"g,omitempty"`
	T0      int64  `json:"t0,omitempty"`
	T1      int64  `json:"t1,omitempty"`
	Seq     int    `json:"seq,omitempty"`
	// Fence marks a tenure held by a prompt fence.
	Fence bool `json:"fence,omitempty"`
	// Lost marks a release that reported ErrLockLost.
	Lost bool   `json:"lost,omitempty"`
	Err  string `json:"err,omitempty"`
	PID  int    `json:"pid,omitempty"`

	Window *WindowRecord `json:"win,omitempty"`
	Inject *InjectRecord `json:"inj,omitempty"`
}

// Window verdicts.
const (
	VerdictAccepted          = "accepted"
	VerdictTakeover          = "takeover"
	VerdictTakeoverAtRelease = "takeover-at-release"
	VerdictError             = "error"
)

// WindowRecord is one prompt window of a controller: from the call of
// ReleaseForPrompt to the return of Reacquire.
type WindowRecord struct {
	// ReleasedTenure and Released are the controller's tenure (its number
	// in the worker's log) and generation before the prompt.
	ReleasedTenure int    `json:"rt"`
	Released       uint64 `json:"g0"`
	RelCall        int64  `json:"r0"`
	RelRet         int64  `json:"r1"`
	// ReacquiredTenure is the tenure Reacquire opened; ReacqCall and
	// ReacqRet bracket the call. All three are zero when the takeover came
	// at ReleaseForPrompt.
	ReacquiredTenure int    `json:"qt,omitempty"`
	ReacqCall        int64  `json:"a0,omitempty"`
	ReacqRet         int64  `json:"a1,omitempty"`
	Reacquired       uint64 `json:"g1,omitempty"`
	Verdict          string `json:"v"`
	// Cause, Change and BreakGen come from the *TakeoverError.
	Cause    string `json:"cause,omitempty"`
	Change   string `json:"change,omitempty"`
	BreakGen uint64 `json:"bg,omitempty"`
	DeadPID  int    `json:"dead,omitempty"`
	// Tenures and Unrecorded are the accepted Window's.
	Tenures    []WindowTenure `json:"ts,omitempty"`
	Unrecorded int            `json:"unrec,omitempty"`
}

// WindowTenure is one co-tenant tenure that an accepted window reported.
type WindowTenure struct {
	Gen   uint64 `json:"g"`
	PID   int    `json:"pid"`
	Died  bool   `json:"died,omitempty"`
	Wrote bool   `json:"wrote,omitempty"`
}

// InjectRecord is one change made behind the lock's back.
type InjectRecord struct {
	Op string `json:"op"`
	// Noop says the change could not be made (for example truncating a
	// file that is empty) and nothing was changed.
	Noop bool `json:"noop,omitempty"`
	// Gen is the ledger's generation read with sessionlock.Inspect right
	// after the change, for the log reader; the checker does not use it.
	Gen uint64 `json:"gen,omitempty"`
}

// eventLog appends events to a file, one write(2) per event, so that a
// process killed with SIGKILL leaves every event it finished writing.
type eventLog struct {
	mu sync.Mutex
	f  *os.File
}

func createLog(path string) (*eventLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &eventLog{f: f}, nil
}

func (l *eventLog) write(e Event) {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // every field is a plain value
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		// A worker that cannot log cannot be checked; stop it loudly.
		fmt.Fprintf(os.Stderr, "stress: writing event log: %v\n", err)
		os.Exit(3)
	}
}

func (l *eventLog) close() error { return l.f.Close() }

// readLog reads every event of a log. A last line cut short (a process
// killed in the middle of writing it) is skipped and counted.
func readLog(path string) (events []Event, torn int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			torn++
			continue
		}
		events = append(events, e)
	}
	return events, torn, sc.Err()
}
