package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// nodeTiming is one measurement as bench.js prints it.
type nodeTiming struct {
	Median  float64 `json:"median_ns"`
	P90     float64 `json:"p90_ns"`
	Max     float64 `json:"max_ns"`
	Samples int     `json:"samples"`
}

type nodeReport struct {
	Skipped string     `json:"skipped"`
	Node    string     `json:"node"`
	Package string     `json:"package"`
	Options string     `json:"options"`
	Tenure  nodeTiming `json:"tenure"`
	Handoff nodeTiming `json:"handoff"`
}

// nodeIterations is how many uncontended tenures bench.js times; each takes
// about a millisecond.
const nodeIterations = 1000

// nodeComparison runs bench.js and sets its figures beside ours from
// figures 1 and 4. The ratio is ours over fs-safe's: below 1 means
// sessionlock is faster.
func nodeComparison(b *bench) []*result {
	tenure := &result{Figure: "node-1", Name: "uncontended tenure vs @openclaw/fs-safe acquireFileLock + release (Node.js)"}
	handoff := &result{Figure: "node-4", Name: "cross-process hand-off vs @openclaw/fs-safe sidecar lock (Node.js)"}
	both := []*result{tenure, handoff}
	skip := func(note string) []*result {
		for _, r := range both {
			r.Verdict, r.Notes = "SKIP", []string{note}
		}
		return both
	}

	node, err := exec.LookPath("node")
	if err != nil {
		return skip("node is not installed")
	}
	script := filepath.Join(b.cfg.nodeDir, "bench.js")
	if _, err := os.Stat(script); err != nil {
		return skip(fmt.Sprintf("no %s (run from the repository root or pass -node-dir)", script))
	}
	if _, err := os.Stat(filepath.Join(b.cfg.nodeDir, "node_modules", "@openclaw", "fs-safe", "package.json")); err != nil {
		return skip(fmt.Sprintf("@openclaw/fs-safe is not installed: run npm install in %s", b.cfg.nodeDir))
	}

	dir, err := os.MkdirTemp(b.dir, "node-")
	if err != nil {
		return fail(both, err)
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', -1, 64) }
	cmd := exec.Command(node, script, "--json", "--dir", dir, "--iterations", strconv.Itoa(nodeIterations),
		"--handoffs", strconv.Itoa(b.cfg.handoffs), "--hold-min-ms", ms(b.cfg.holdMin), "--hold-max-ms", ms(b.cfg.holdMax))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fail(both, fmt.Errorf("%s: %w", script, err))
	}
	var rep nodeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return fail(both, fmt.Errorf("%s printed %q: %w", script, out, err))
	}
	if rep.Skipped != "" {
		return skip(rep.Skipped)
	}

	compare := func(r *result, ours *result, theirs nodeTiming, what string) {
		if ours == nil || ours.Error != "" {
			r.Verdict, r.Error = "ERROR", "our figure did not run"
			return
		}
		r.Ours = ours.Ours
		r.Baseline = sample{What: fmt.Sprintf("%s, %s on Node.js %s", what, rep.Package, rep.Node), Unit: "ns",
			Median: theirs.Median, P90: theirs.P90, Max: theirs.Max, Samples: theirs.Samples}
		r.Ratio = r.Ours.Median / r.Baseline.Median
		r.Goal, r.Verdict = "none (comparison; below 1x means sessionlock is faster)", "INFO"
		r.Notes = []string{rep.Options, "measured after ours, not interleaved with it"}
	}
	compare(tenure, b.results["1"], rep.Tenure, "acquireFileLock + release")
	compare(handoff, b.results["4"], rep.Handoff, "release -> waiting acquireFileLock returns in another process")
	return both
}

func fail(rs []*result, err error) []*result {
	for _, r := range rs {
		r.Verdict, r.Error = "ERROR", err.Error()
	}
	return rs
}
