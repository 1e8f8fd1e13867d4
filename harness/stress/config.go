package stress

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/sessionlock/sessionlock"
)

// Config sizes a run. A zero field means its default (see DefaultConfig),
// except Controllers, Tenures, Keep and Seed, whose zero is taken as it
// is. A run with the defaults takes about a minute on two cores.
type Config struct {
	// Dir holds the session files, event logs and run.json. Empty means a
	// fresh temporary directory, removed after the run unless Keep is set.
	Dir  string
	Keep bool

	// Procs worker processes, each with Goroutines goroutines of which
	// Controllers drive prompt fences, share Sessions session files.
	Procs, Goroutines, Controllers, Sessions int
	// Duration bounds each phase. Tenures, when positive, also ends each
	// goroutine after that many tenures.
	Duration time.Duration
	Tenures  int
	// Phases to run, in order: see PhaseNames.
	Phases []string

	// InjectEvery is the mean time between injections, KillEvery between
	// kills in the kill phase.
	InjectEvery, KillEvery time.Duration
	// HoldMax bounds how long a tenure holds the lock after its appends,
	// GapMax the pause between a worker's tenures, PromptMax a simulated
	// prompt.
	HoldMax, GapMax, PromptMax time.Duration
	// Guard is the band around every tenure boundary within which an
	// injection counts as ambiguous.
	Guard time.Duration
	// OpTimeout bounds every acquire; one that times out is an error.
	OpTimeout time.Duration
	// Mode is the fingerprint mode: "auto", "stat" or "content".
	Mode string
	Seed uint64

	// Command returns the command that runs a worker process for the spec
	// file at spec. The harness sets Stdin, Stdout and Stderr.
	Command func(spec string) *exec.Cmd
	// Progress, if not nil, receives a line per phase.
	Progress io.Writer
}

// DefaultConfig returns the default sizes.
func DefaultConfig() Config {
	return Config{
		Procs:       3,
		Goroutines:  4,
		Controllers: 2,
		Sessions:    3,
		Duration:    12 * time.Second,
		Phases:      PhaseNames(),
		InjectEvery: 30 * time.Millisecond,
		KillEvery:   250 * time.Millisecond,
		HoldMax:     8 * time.Millisecond,
		GapMax:      30 * time.Millisecond,
		PromptMax:   25 * time.Millisecond,
		Guard:       2 * time.Millisecond,
		OpTimeout:   20 * time.Second,
		Mode:        "auto",
		Seed:        1,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.Procs, d.Procs)
	setInt(&c.Goroutines, d.Goroutines)
	setInt(&c.Sessions, d.Sessions)
	setDur(&c.Duration, d.Duration)
	setDur(&c.InjectEvery, d.InjectEvery)
	setDur(&c.KillEvery, d.KillEvery)
	setDur(&c.HoldMax, d.HoldMax)
	setDur(&c.GapMax, d.GapMax)
	setDur(&c.PromptMax, d.PromptMax)
	setDur(&c.Guard, d.Guard)
	setDur(&c.OpTimeout, d.OpTimeout)
	if c.Phases == nil {
		c.Phases = d.Phases
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Procs < 1 || c.Goroutines < 1 || c.Sessions < 1:
		return fmt.Errorf("procs, goroutines and sessions must be at least 1")
	case c.Controllers < 0 || c.Controllers > c.Goroutines:
		return fmt.Errorf("controllers must be between 0 and goroutines (%d)", c.Goroutines)
	case c.Command == nil:
		return fmt.Errorf("no command to start worker processes")
	}
	if _, err := parseMode(c.Mode); err != nil {
		return err
	}
	for _, p := range c.Phases {
		if _, ok := phases[p]; !ok {
			return fmt.Errorf("unknown phase %q (known: %s)", p, strings.Join(PhaseNames(), ", "))
		}
	}
	return nil
}

func parseMode(s string) (sessionlock.FingerprintMode, error) {
	for _, m := range []sessionlock.FingerprintMode{sessionlock.FingerprintAuto, sessionlock.FingerprintStat, sessionlock.FingerprintContent} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown fingerprint mode %q (auto, stat or content)", s)
}

// Injection operations. The first group changes the session file, the
// second the lock file; every one of them changes content, so that it is a
// change in every fingerprint mode.
const (
	opAppend   = "append"   // append a line the checker recognises and ignores
	opRewrite  = "rewrite"  // overwrite one line in place, same size, mtime restored
	opTruncate = "truncate" // cut the file short
	opReplace  = "replace"  // write a new file (old content and a marker line) and rename it over
	opRecreate = "recreate" // delete the file, then create it again with the old content and a marker line

	opLockRemove       = "lock-rm"         // rm the lock file
	opLockMoveEmpty    = "lock-mv-empty"   // mv an empty file over the lock file
	opLockMoveGarbage  = "lock-mv-garbage" // mv a file that is no ledger over the lock file
	lockOpPrefix       = "lock-"
	injectedLineMarker = `"inject"`
)

func isLockOp(op string) bool { return strings.HasPrefix(op, lockOpPrefix) }

// phase describes what a phase of the run does and what the checker
// requires of it.
type phase struct {
	inject []string
	// kill: the harness kills holders with SIGKILL and starts replacements.
	kill bool
	// checkLoss: nothing in the phase may destroy a line, so every
	// acknowledged line must be in the file.
	checkLoss bool
	// checkOrder: nothing in the phase can reset a ledger, so the lines of
	// a file carry non-decreasing generations.
	checkOrder bool
	about      string
}

var phases = map[string]phase{
	"appends": {inject: []string{opAppend}, checkLoss: true, checkOrder: true,
		about: "tenures and fences; the injector only appends lines of its own"},
	"destructive": {inject: []string{opAppend, opRewrite, opTruncate, opReplace, opRecreate},
		about: "every kind of session file injection; lines may be lost and are not counted"},
	"kill": {inject: []string{opAppend}, kill: true, checkLoss: true,
		about: "holders killed with SIGKILL mid-tenure, replaced by new processes"},
	"lockfile": {inject: []string{opLockRemove, opLockMoveEmpty, opLockMoveGarbage}, checkLoss: true,
		about: "lock files removed or replaced while held and while waited on"},
}

// PhaseNames lists the phases in the order a default run runs them.
func PhaseNames() []string { return []string{"appends", "destructive", "kill", "lockfile"} }

// Spec is a worker process's job, passed to it as a JSON file.
type Spec struct {
	Role        string   `json:"role"` // roleTenants or roleInjector
	Phase       string   `json:"phase"`
	Proc        string   `json:"proc"`
	Dir         string   `json:"dir"`
	Sessions    []string `json:"sessions"`
	Log         string   `json:"log"`
	Goroutines  int      `json:"goroutines"`
	Controllers int      `json:"controllers"`
	Tenures     int      `json:"tenures"`
	// StopAt is the CLOCK_MONOTONIC time at which the process stops
	// starting new work. It also stops when its standard input closes.
	StopAt      int64         `json:"stop_at"`
	Inject      []string      `json:"inject,omitempty"`
	InjectEvery time.Duration `json:"inject_every,omitempty"`
	HoldMax     time.Duration `json:"hold_max"`
	GapMax      time.Duration `json:"gap_max"`
	PromptMax   time.Duration `json:"prompt_max"`
	OpTimeout   time.Duration `json:"op_timeout"`
	Mode        string        `json:"mode"`
	Seed        uint64        `json:"seed"`
}

const (
	roleTenants  = "tenants"
	roleInjector = "injector"
)
