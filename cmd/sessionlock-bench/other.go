//go:build !linux

package main

import (
	"fmt"
	"os"
)

// notSupported is the note for figures that read CLOCK_MONOTONIC across
// processes or count threads and descriptors through /proc.
const notSupported = "not supported on this platform"

func skipped(figure, name string) *result {
	return &result{Figure: figure, Name: name, Verdict: "SKIP", Notes: []string{notSupported}}
}

// floorCycle is Linux only; figure 1 reports no floor elsewhere.
func floorCycle(string, bool) (func() error, func(), error) { return nil, nil, nil }

func handoffFigure(*bench) (*result, error) {
	return skipped("4", "cross-process hand-off"), nil
}

func scaleFigure(*bench) (*result, error) {
	return skipped("5", "scale"), nil
}

func nodeComparison(*bench) []*result {
	return []*result{skipped("node", "@openclaw/fs-safe sidecar lock (Node.js)")}
}

func handoffWorker(string, string) int {
	fmt.Fprintln(os.Stderr, "sessionlock-bench -worker:", notSupported)
	return 2
}

func cpuAndKernel() (cpu, kernel string) { return "unknown", "unknown" }
