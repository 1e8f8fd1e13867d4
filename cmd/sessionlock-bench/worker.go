package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/sessionlock/sessionlock"
)

// runWorker runs the hidden worker modes:
//
//	-worker tenures -n N -file SESSION   N tenures, for strace -c
//	-worker fence -n N -file SESSION     N fence cycles, for strace -c
//	-worker bare -n N -file LOCKFILE     N bare gofrs/flock cycles, for strace -c
//	-worker handoff-sessionlock -file SESSION
//	-worker handoff-flock -file LOCKFILE
//
// The hand-off workers are process B of figure 4: they take commands on
// standard input and answer on standard output.
func runWorker(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "sessionlock-bench -worker: missing mode")
		return 2
	}
	mode := args[0]
	fs := flag.NewFlagSet("sessionlock-bench -worker "+mode, flag.ContinueOnError)
	n := fs.Int("n", 1000, "operations to run")
	file := fs.String("file", "", "session file, or lock file for the flock modes")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(os.Stderr, "sessionlock-bench -worker: -file is required")
		return 2
	}

	var op func() error
	switch mode {
	case "tenures":
		op = tenure(*file)
	case "bare":
		op = bareCycle(*file)
	case "fence":
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), *file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pf := sessionlock.NewPromptFence(l)
		defer pf.Close()
		op = func() error {
			if err := pf.ReleaseForPrompt(); err != nil {
				return err
			}
			return pf.Reacquire(context.Background())
		}
	default:
		return handoffWorker(mode, *file)
	}
	for range *n {
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}
