package stress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/sessionlock/sessionlock"
)

// stopGrace is how long past a phase's stop time the harness waits for its
// processes before it kills them and counts them as hung. A worker stops
// starting tenures at the stop time, so it only has to finish one acquire
// (bounded by OpTimeout) and one release.
const stopGrace = 30 * time.Second

// runRecord is what a run leaves in run.json for the checker.
type runRecord struct {
	Guard  time.Duration `json:"guard"`
	Phases []phaseRecord `json:"phases"`
}

// phaseRecord is one phase of a run.
type phaseRecord struct {
	Name     string   `json:"name"`
	Dir      string   `json:"dir"`
	Sessions []string `json:"sessions"`
	Logs     []string `json:"logs"`
	// Failed lists worker processes that exited with an error, and Hung
	// those the harness had to kill because they did not stop.
	Failed []string `json:"failed,omitempty"`
	Hung   []string `json:"hung,omitempty"`
}

// Run runs the phases of cfg one after the other, then checks the logs and
// returns the figures. An error means the harness itself could not run;
// the figures say whether the library passed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "sessionlock-stress-*")
		if err != nil {
			return nil, err
		}
		dir = d
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	for _, sub := range []string{"logs", "specs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}

	rec := runRecord{Guard: cfg.Guard}
	for i, name := range cfg.Phases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "phase %s (%v): %s\n", name, cfg.Duration, phases[name].about)
		}
		r := &phaseRunner{cfg: cfg, name: name, ph: phases[name], root: dir, seed: cfg.Seed*1000 + uint64(i)*100}
		pr, err := r.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", name, err)
		}
		rec.Phases = append(rec.Phases, *pr)
	}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "run.json"), raw, 0o644); err != nil {
		return nil, err
	}
	rep, err := Check(dir)
	if err != nil {
		return nil, err
	}
	rep.Dir = dir
	return rep, nil
}

// phaseRunner starts and watches the processes of one phase.
type phaseRunner struct {
	cfg  Config
	name string
	ph   phase
	root string
	seed uint64

	rec    phaseRecord
	stopAt int64
	orch   *eventLog // the harness's own events: kills

	mu    sync.Mutex
	procs map[string]*proc
	next  int
}

// proc is a running worker process.
type proc struct {
	id       string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{}
	err      error // valid once done is closed
	injector bool
	killed   bool
}

func (r *phaseRunner) run(ctx context.Context) (*phaseRecord, error) {
	cfg := r.cfg
	dir := filepath.Join(r.root, r.name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	r.rec = phaseRecord{Name: r.name, Dir: dir}
	for i := 0; i < cfg.Sessions; i++ {
		r.rec.Sessions = append(r.rec.Sessions, fmt.Sprintf("session%d.jsonl", i))
	}
	orchLog := filepath.Join(r.root, "logs", r.name+"-harness.jsonl")
	orch, err := createLog(orchLog)
	if err != nil {
		return nil, err
	}
	defer orch.close()
	r.orch = orch
	r.rec.Logs = append(r.rec.Logs, orchLog)
	r.procs = map[string]*proc{}
	r.stopAt = Now() + int64(cfg.Duration)

	for i := 0; i < cfg.Procs; i++ {
		if _, err := r.start(roleTenants); err != nil {
			r.killAll()
			return nil, err
		}
	}
	injector, err := r.start(roleInjector)
	if err != nil {
		r.killAll()
		return nil, err
	}

	// An interrupted run stops its workers early: they end their tenures
	// when their standard input closes.
	defer context.AfterFunc(ctx, r.stopAll)()

	if r.ph.kill {
		r.killHolders(ctx)
	}

	// Wait for the tenants (and their replacements), then stop the
	// injector: a run bounded by a tenure count may end before its stop
	// time.
	deadline := time.Now().Add(time.Duration(r.stopAt-Now()) + stopGrace)
	for {
		p := r.nextRunning(false)
		if p == nil {
			break
		}
		r.await(p, deadline)
	}
	_ = injector.stdin.Close()
	r.await(injector, deadline)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(r.procs)) {
		p := r.procs[id]
		if p.err != nil && !p.killed {
			r.rec.Failed = append(r.rec.Failed, fmt.Sprintf("%s: %v (see %s)", id, p.err, r.stderrPath(id)))
		}
	}
	return &r.rec, nil
}

func (r *phaseRunner) stderrPath(id string) string {
	return filepath.Join(r.root, "logs", r.name+"-"+id+".stderr")
}

// start launches a worker process in role.
func (r *phaseRunner) start(role string) (*proc, error) {
	cfg := r.cfg
	r.mu.Lock()
	r.next++
	id := fmt.Sprintf("p%d", r.next)
	if role == roleInjector {
		id = "inj"
	}
	r.mu.Unlock()

	logPath := filepath.Join(r.root, "logs", r.name+"-"+id+".jsonl")
	sp := Spec{
		Role: role, Phase: r.name, Proc: id, Dir: r.rec.Dir, Sessions: r.rec.Sessions, Log: logPath,
		Goroutines: cfg.Goroutines, Controllers: cfg.Controllers, Tenures: cfg.Tenures, StopAt: r.stopAt,
		HoldMax: cfg.HoldMax, GapMax: cfg.GapMax, PromptMax: cfg.PromptMax, OpTimeout: cfg.OpTimeout,
		Mode: cfg.Mode, Seed: r.seed + uint64(r.next),
	}
	if role == roleInjector {
		sp.Inject, sp.InjectEvery = r.ph.inject, cfg.InjectEvery
	}
	raw, err := json.Marshal(sp)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(r.root, "specs", r.name+"-"+id+".json")
	if err := os.WriteFile(specPath, raw, 0o644); err != nil {
		return nil, err
	}
	stderr, err := os.Create(r.stderrPath(id))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()

	cmd := cfg.Command(specPath)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %s: %w", id, err)
	}
	p := &proc{id: id, cmd: cmd, stdin: stdin, done: make(chan struct{}), injector: role == roleInjector}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs[id] = p
	r.rec.Logs = append(r.rec.Logs, logPath)
	r.mu.Unlock()
	return p, nil
}

// nextRunning returns a tenants process that has not been waited for.
func (r *phaseRunner) nextRunning(injector bool) *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(r.procs)) {
		p := r.procs[id]
		if p.injector != injector {
			continue
		}
		select {
		case <-p.done:
		default:
			return p
		}
	}
	return nil
}

// await waits for p until deadline, then kills it and counts it as hung.
func (r *phaseRunner) await(p *proc, deadline time.Time) {
	select {
	case <-p.done:
		return
	case <-time.After(time.Until(deadline)):
	}
	r.kill(p)
	r.mu.Lock()
	r.rec.Hung = append(r.rec.Hung, p.id)
	r.mu.Unlock()
}

// kill sends SIGKILL to p, waits until it is reaped and logs the kill.
func (r *phaseRunner) kill(p *proc) {
	r.mu.Lock()
	p.killed = true
	r.mu.Unlock()
	t0 := Now()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	r.orch.write(Event{Kind: evKill, Worker: p.id, PID: p.cmd.Process.Pid, T0: t0, T1: Now()})
}

// stopAll closes every worker's standard input, which stops it.
func (r *phaseRunner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.procs {
		_ = p.stdin.Close()
	}
}

func (r *phaseRunner) killAll() {
	r.mu.Lock()
	var all []*proc
	for _, p := range r.procs {
		all = append(all, p)
	}
	r.mu.Unlock()
	for _, p := range all {
		r.kill(p)
	}
}

// killHolders kills, every KillEvery or so until shortly before the stop
// time, a worker process that holds a lock at that moment (as Inspect
// sees it), and starts a replacement so the phase goes on at full strength.
func (r *phaseRunner) killHolders(ctx context.Context) {
	rng := rand.New(rand.NewPCG(r.seed, 0xdead))
	// Leave a replacement time to start and do some work.
	last := r.stopAt - int64(r.cfg.Duration/4)
	for Now() < last && ctx.Err() == nil {
		time.Sleep(r.cfg.KillEvery/2 + time.Duration(rng.Int64N(int64(r.cfg.KillEvery)+1)))
		victim := r.findHolder(rng)
		if victim == nil {
			continue
		}
		r.kill(victim)
		if _, err := r.start(roleTenants); err != nil {
			r.orch.write(Event{Kind: evError, Worker: "harness", T0: Now(), Err: "starting replacement: " + err.Error()})
		}
	}
}

// findHolder returns a running tenants process that Inspect names as the
// holder of some session's lock, trying the sessions in random order.
func (r *phaseRunner) findHolder(rng *rand.Rand) *proc {
	for _, i := range rng.Perm(len(r.rec.Sessions)) {
		st, err := sessionlock.Inspect(filepath.Join(r.rec.Dir, r.rec.Sessions[i]))
		if err != nil || !st.Held || st.Holder == nil {
			continue
		}
		r.mu.Lock()
		for _, p := range r.procs {
			if !p.injector && p.cmd.Process.Pid == st.Holder.PID {
				select {
				case <-p.done:
				default:
					r.mu.Unlock()
					return p
				}
			}
		}
		r.mu.Unlock()
	}
	return nil
}
