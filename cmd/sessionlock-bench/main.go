// Command sessionlock-bench measures what the sessionlock library costs, each
// figure as a ratio to a baseline measured in the same run. Absolute times
// are printed too, but on a shared, noisy machine only the ratios mean
// anything: the measured code and its baseline run in alternating rounds, so
// both see the same load.
//
// Usage:
//
//	go run ./cmd/sessionlock-bench [flags]
//
// The figures:
//
//  1. uncontended tenure: AcquireSessionWriteLock + Release on an existing
//     1 MiB session file, against a bare gofrs/flock New + Lock + Unlock
//     cycle on a lock file (goal: ratio <= 1.5);
//  2. fence cycle: ReleaseForPrompt + Reacquire on an unchanged 1 MiB
//     session file, against the same bare cycle (goal: <= 2.5);
//  3. in-process contention: 4 goroutines taking tenures on one session
//     file, against 4 goroutines taking a sync.Mutex-guarded bare cycle
//     (goal: throughput >= 0.8 of the baseline; the longest wait is shown);
//  4. cross-process hand-off: the time from process A starting Release to
//     process B's waiting AcquireSessionWriteLock returning, both read from
//     CLOCK_MONOTONIC, against a blocking flock(2) hand-off between two
//     processes (goal: median <= 2x); mixed rounds (A sessionlock, B bare
//     flock, and the reverse) split the excess between release and acquire;
//     also that a waiter's cancellation works, and the OS thread count
//     after 1000 in-process waiters are cancelled, on one held session and
//     on 1000 distinct ones (Linux only);
//  5. scale: 100,000 distinct session files acquired and released one after
//     another, then 1,000 held at once: descriptors and heap (after a GC)
//     return to where they were, and the bytes and descriptors per held lock
//     against bare gofrs/flock locks (Linux only);
//  6. content verification: a FingerprintContent fence cycle on a 64 MiB
//     file, against reading that file once (no goal was set; reported).
//
// After figures 1 and 4 it runs the same measurements on the sidecar lock of
// the npm package @openclaw/fs-safe, from the Node.js script in
// cmd/sessionlock-bench/node, when node and the installed package are there;
// otherwise it prints why it skipped them.
//
// Each figure prints its median (and p90 where a distribution is sampled),
// the baseline's, the ratio, the goal, and PASS or MISS. The verdicts are
// information: the exit status is 0 unless a measurement could not run.
//
// The flags:
//
//	-only LIST        run only these figures: comma-separated 1-6 and "node"
//	                  (node also runs 1 and 4, which it compares against)
//	-json             print the results as one JSON object instead of text
//	-dir DIR          where to create session files (default: a new
//	                  directory under the system temporary directory)
//	-rounds N         rounds of figures 1 to 3, alternating with the baseline
//	-iterations N     operations per round in figures 1 and 2
//	-duration D       length of each contention round in figure 3
//	-handoffs N       hand-off rounds in figure 4
//	-hold-min D, -hold-max D
//	                  how long process A keeps the lock after B starts
//	                  waiting, drawn uniformly per round
//	-waiters N        waiters cancelled in figure 4's thread count
//	-sessions N, -held N
//	                  figure 5's sequential sessions and held locks
//	-content-mib N    size of figure 6's file
//	-content-rounds N rounds of figure 6
//	-node-dir DIR     the Node.js script's directory
//
// Cross-process figures re-run this program as workers with a hidden
// -worker flag (its first argument); "-worker tenures -n N -file F" runs N
// tenures on F and exits, for counting system calls with strace.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sessionlock/sessionlock"
)

type config struct {
	only          map[string]bool
	json          bool
	dir           string
	rounds        int
	iterations    int
	duration      time.Duration
	handoffs      int
	holdMin       time.Duration
	holdMax       time.Duration
	waiters       int
	sessions      int
	held          int
	contentMiB    int
	contentRounds int
	nodeDir       string
}

// result is one figure: our measurement, its baseline, and their ratio.
type result struct {
	Figure   string   `json:"figure"`
	Name     string   `json:"name"`
	Ours     sample   `json:"ours"`
	Baseline sample   `json:"baseline"`
	Ratio    float64  `json:"ratio"`
	Goal     string   `json:"goal"`
	Verdict  string   `json:"verdict"` // PASS, MISS, INFO, SKIP or ERROR
	Details  []detail `json:"details,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// sample summarises one side of a figure. Unit is "ns" for times, "ops/s"
// for throughput, "bytes" or "count".
type sample struct {
	What    string  `json:"what"`
	Unit    string  `json:"unit"`
	Median  float64 `json:"median"`
	P90     float64 `json:"p90,omitempty"`
	Max     float64 `json:"max,omitempty"`
	Samples int     `json:"samples"`
}

// detail is a further number that a figure reports.
type detail struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// report is the whole run, as -json prints it.
type report struct {
	Machine machine   `json:"machine"`
	Command string    `json:"command"`
	Dir     string    `json:"dir"`
	FS      string    `json:"file_system"`
	Started time.Time `json:"started"`
	Results []*result `json:"results"`
}

type machine struct {
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	CPUs    int    `json:"cpus"`
	CPU     string `json:"cpu"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	Threads int    `json:"gomaxprocs"`
}

// bench carries what the figures share.
type bench struct {
	cfg     config
	dir     string
	results map[string]*result
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		os.Exit(runWorker(os.Args[2:]))
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessionlock-bench:", err)
		os.Exit(2)
	}
	ok, err := run(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessionlock-bench:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("sessionlock-bench", flag.ContinueOnError)
	var cfg config
	only := fs.String("only", "", "run only these figures: comma-separated 1-6 and node")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object instead of text")
	fs.StringVar(&cfg.dir, "dir", "", "directory for session files (default: a new temporary directory)")
	fs.IntVar(&cfg.rounds, "rounds", 30, "rounds of figures 1 to 3, alternating with the baseline")
	fs.IntVar(&cfg.iterations, "iterations", 200, "operations per round in figures 1 and 2")
	fs.DurationVar(&cfg.duration, "duration", 100*time.Millisecond, "length of each contention round in figure 3")
	fs.IntVar(&cfg.handoffs, "handoffs", 200, "hand-off rounds in figure 4")
	fs.DurationVar(&cfg.holdMin, "hold-min", time.Millisecond, "shortest time A holds the lock after B starts waiting")
	fs.DurationVar(&cfg.holdMax, "hold-max", 20*time.Millisecond, "longest time A holds the lock after B starts waiting")
	fs.IntVar(&cfg.waiters, "waiters", 1000, "waiters cancelled in figure 4's thread count")
	fs.IntVar(&cfg.sessions, "sessions", 100000, "distinct sessions acquired one after another in figure 5")
	fs.IntVar(&cfg.held, "held", 1000, "locks held at once in figure 5")
	fs.IntVar(&cfg.contentMiB, "content-mib", 64, "size of figure 6's session file in MiB")
	fs.IntVar(&cfg.contentRounds, "content-rounds", 9, "rounds of figure 6")
	fs.StringVar(&cfg.nodeDir, "node-dir", filepath.Join("cmd", "sessionlock-bench", "node"), "directory of the Node.js comparison script")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	for name, v := range map[string]int{"rounds": cfg.rounds, "iterations": cfg.iterations, "handoffs": cfg.handoffs,
		"waiters": cfg.waiters, "sessions": cfg.sessions, "held": cfg.held, "content-mib": cfg.contentMiB, "content-rounds": cfg.contentRounds} {
		if v < 1 {
			return cfg, fmt.Errorf("-%s must be at least 1", name)
		}
	}
	if cfg.duration <= 0 || cfg.holdMin <= 0 || cfg.holdMax < cfg.holdMin {
		return cfg, errors.New("-duration and -hold-min must be positive and -hold-max at least -hold-min")
	}
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, f := range strings.Split(*only, ",") {
			f = strings.TrimSpace(f)
			if n, err := strconv.Atoi(f); (err != nil || n < 1 || n > len(figures)) && f != "node" {
				return cfg, fmt.Errorf("-only: unknown figure %q (want 1-%d or node)", f, len(figures))
			}
			cfg.only[f] = true
		}
		if cfg.only["node"] {
			cfg.only["1"], cfg.only["4"] = true, true
		}
	}
	return cfg, nil
}

// figures lists the measurements in the order they run. The Node.js
// comparison runs last, against figures 1 and 4.
var figures = []func(*bench) (*result, error){
	tenureFigure,
	fenceFigure,
	contentionFigure,
	handoffFigure,
	scaleFigure,
	contentFigure,
}

// run measures the selected figures and prints them to w. It reports false
// when some measurement failed to run.
func run(cfg config, w io.Writer) (bool, error) {
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "sessionlock-bench-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// Session paths are canonical from the start, so the baseline lock
	// files sit where the library's would.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err
	}
	fsys, err := sessionlock.InspectFileSystem(dir)
	if err != nil {
		return false, err
	}

	b := &bench{cfg: cfg, dir: dir, results: map[string]*result{}}
	rep := report{Machine: describeMachine(), Command: commandLine(), Dir: dir, Started: time.Now().UTC(),
		FS: fmt.Sprintf("%s (remote %t, fine timestamps %t, auto mode %s)", fsys.Type, fsys.Remote, fsys.FineTimestamps, fsys.AutoMode())}
	if !cfg.json {
		printHeader(w, rep)
	}

	ok := true
	selected := func(name string) bool { return cfg.only == nil || cfg.only[name] }
	for i, fig := range figures {
		name := strconv.Itoa(i + 1)
		if !selected(name) {
			continue
		}
		r, err := fig(b)
		if err != nil {
			if r == nil {
				r = &result{Figure: name}
			}
			r.Verdict, r.Error = "ERROR", err.Error()
			ok = false
		}
		b.results[name] = r
		rep.Results = append(rep.Results, r)
		if !cfg.json {
			printResult(w, r)
		}
	}
	if selected("node") {
		for _, r := range nodeComparison(b) {
			if r.Verdict == "ERROR" {
				ok = false
			}
			rep.Results = append(rep.Results, r)
			if !cfg.json {
				printResult(w, r)
			}
		}
	}

	if cfg.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return false, err
		}
	}
	return ok, nil
}

// commandLine is the command that reproduces this run.
func commandLine() string {
	args := []string{"go run ./cmd/sessionlock-bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"") {
			a = strconv.Quote(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func printHeader(w io.Writer, rep report) {
	m := rep.Machine
	fmt.Fprintf(w, "sessionlock-bench: %s/%s, %d CPUs (GOMAXPROCS %d), %s, kernel %s, %s\n",
		m.OS, m.Arch, m.CPUs, m.Threads, m.CPU, m.Kernel, m.Go)
	fmt.Fprintf(w, "directory: %s: %s\n", rep.Dir, rep.FS)
	fmt.Fprintf(w, "command: %s\n", rep.Command)
	fmt.Fprintln(w, "ratios compare runs interleaved in the same process; absolute times are for orientation only")
}

func printResult(w io.Writer, r *result) {
	fmt.Fprintf(w, "\n%s. %s\n", r.Figure, r.Name)
	if r.Error != "" {
		fmt.Fprintf(w, "   ERROR: %s\n", r.Error)
		return
	}
	if r.Verdict == "SKIP" {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "   skipped: %s\n", n)
		}
		return
	}
	sides := []struct {
		label string
		s     sample
	}{{"ours", r.Ours}, {"baseline", r.Baseline}}
	for _, x := range sides {
		s := x.s
		line := fmt.Sprintf("   %-9s median %9s", x.label, formatValue(s.Median, s.Unit))
		if s.P90 != 0 {
			line += fmt.Sprintf("   p90 %9s", formatValue(s.P90, s.Unit))
		}
		if s.Max != 0 {
			line += fmt.Sprintf("   max %9s", formatValue(s.Max, s.Unit))
		}
		fmt.Fprintf(w, "%s   (%s; n=%d)\n", line, s.What, s.Samples)
	}
	fmt.Fprintf(w, "   ratio     %.2fx   goal %s   %s\n", r.Ratio, r.Goal, r.Verdict)
	for _, d := range r.Details {
		fmt.Fprintf(w, "   - %s: %s\n", d.Name, formatValue(d.Value, d.Unit))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "   note: %s\n", n)
	}
}

// formatValue prints v in its unit: times with three significant digits in
// a fitting unit, counts as integers.
func formatValue(v float64, unit string) string {
	switch unit {
	case "ns":
		d := time.Duration(math.Round(v))
		switch {
		case d >= time.Second:
			return fmt.Sprintf("%.3gs", v/1e9)
		case d >= time.Millisecond:
			return fmt.Sprintf("%.3gms", v/1e6)
		case d >= time.Microsecond:
			return fmt.Sprintf("%.3gµs", v/1e3)
		}
		return fmt.Sprintf("%.0fns", v)
	case "ops/s":
		return fmt.Sprintf("%.0f/s", v)
	case "bytes":
		return fmt.Sprintf("%.0f B", v)
	case "count":
		return strconv.FormatFloat(v, 'f', -1, 64)
	case "ratio":
		return fmt.Sprintf("%.2fx", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

// verdict compares ratio with a goal "<= x" or ">= x".
func verdict(ratio float64, op string, goal float64) string {
	if (op == "<=" && ratio <= goal) || (op == ">=" && ratio >= goal) {
		return "PASS"
	}
	return "MISS"
}

func describeMachine() machine {
	cpu, kernel := cpuAndKernel()
	return machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), CPU: cpu, Kernel: kernel,
		Go: runtime.Version(), Threads: runtime.GOMAXPROCS(0)}
}
