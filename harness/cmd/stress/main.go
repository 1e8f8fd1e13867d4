// Command stress runs the sessionlock stress and fault harness (package
// github.com/sessionlock/sessionlock/harness/stress) and prints its
// figures. It exits with status 1 if any failure count is not zero, and 2
// if the harness itself could not run.
//
//	go run ./harness/cmd/stress                      # default: about a minute
//	go run ./harness/cmd/stress -duration 2m -procs 6 -goroutines 8
//	go run ./harness/cmd/stress -phases kill,lockfile -keep
//	go run ./harness/cmd/stress -check /tmp/sessionlock-stress-123
//
// Worker processes are re-executions of this command with the hidden
// -worker flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sessionlock/sessionlock/harness/stress"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	d := stress.DefaultConfig()
	cfg := d
	fs := flag.NewFlagSet("stress", flag.ContinueOnError)
	fs.IntVar(&cfg.Procs, "procs", d.Procs, "worker `processes` per phase")
	fs.IntVar(&cfg.Goroutines, "goroutines", d.Goroutines, "`goroutines` per worker process")
	fs.IntVar(&cfg.Controllers, "controllers", d.Controllers, "goroutines per process that drive prompt fences (`n` of -goroutines)")
	fs.IntVar(&cfg.Sessions, "sessions", d.Sessions, "session `files` per phase")
	fs.DurationVar(&cfg.Duration, "duration", d.Duration, "length of each phase")
	fs.IntVar(&cfg.Tenures, "tenures", 0, "also end each goroutine after `n` tenures (0: only -duration)")
	phaseList := fs.String("phases", strings.Join(d.Phases, ","), "comma-separated `phases` to run: "+strings.Join(stress.PhaseNames(), ", "))
	fs.DurationVar(&cfg.InjectEvery, "inject-every", d.InjectEvery, "mean time between injections")
	fs.DurationVar(&cfg.KillEvery, "kill-every", d.KillEvery, "mean time between kills in the kill phase")
	fs.DurationVar(&cfg.HoldMax, "hold", d.HoldMax, "longest hold of a tenure after its appends")
	fs.DurationVar(&cfg.GapMax, "gap", d.GapMax, "longest pause between a worker's tenures")
	fs.DurationVar(&cfg.PromptMax, "prompt", d.PromptMax, "longest simulated prompt")
	fs.DurationVar(&cfg.Guard, "guard", d.Guard, "guard band around tenure boundaries for classifying injections")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", d.OpTimeout, "bound on every acquire; a timeout counts as an error")
	fs.StringVar(&cfg.Mode, "mode", d.Mode, "fingerprint `mode`: auto, stat or content")
	fs.Uint64Var(&cfg.Seed, "seed", d.Seed, "random `seed`")
	fs.StringVar(&cfg.Dir, "dir", "", "work `directory` (default: a new temporary directory)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (logs, session files) after the run")
	check := fs.String("check", "", "only check the kept run in `directory` and print its figures")
	worker := fs.String("worker", "", "")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: stress [flags]\n\nRuns the sessionlock stress and fault harness and prints its figures.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "worker" {
				return // internal: the role of a re-executed worker process
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  -%s %s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	if *worker != "" {
		if err := stress.RunWorker(*worker); err != nil {
			fmt.Fprintln(os.Stderr, "stress worker:", err)
			return 1
		}
		return 0
	}

	var rep *stress.Report
	var err error
	if *check != "" {
		rep, err = stress.Check(*check)
	} else {
		cfg.Phases = strings.Split(*phaseList, ",")
		cfg.Progress = os.Stdout
		self, serr := os.Executable()
		if serr != nil {
			fmt.Fprintln(os.Stderr, "stress:", serr)
			return 2
		}
		cfg.Command = func(spec string) *exec.Cmd { return exec.Command(self, "-worker", spec) }
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		fmt.Printf("sessionlock stress: %d processes x %d goroutines (%d controlling fences), %d sessions, %v per phase, mode %s\n",
			cfg.Procs, cfg.Goroutines, cfg.Controllers, cfg.Sessions, cfg.Duration, cfg.Mode)
		rep, err = stress.Run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stress:", err)
		return 2
	}
	fmt.Println()
	rep.Print(os.Stdout)
	if cfg.Keep {
		fmt.Printf("run kept in %s\n", rep.Dir)
	}
	if len(rep.Failures()) > 0 {
		return 1
	}
	return 0
}
