// Package stress is a stress and fault harness for sessionlock: several
// processes, each with several goroutines, take tenures on a few session
// files and append sequence-numbered lines through Lock.Append, while
// controllers open prompt fences across simulated prompts, an injector
// process changes the session files (or their lock files) behind the
// lock's back, and, in one phase, the harness kills holders with SIGKILL.
//
// Every process writes what it did to its own event log (JSON Lines, one
// write per event, so a killed process loses at most the event it was
// writing). Times come from CLOCK_MONOTONIC, which every process on the
// machine shares, so the checker can put the logs of all processes on one
// time line afterwards and verify:
//
//   - mutual exclusion: no two tenures of one session file overlap;
//   - in phases without destructive injections, every acknowledged line is
//     in the file exactly once (and in no phase more than once);
//   - every prompt window that contained a change made while nobody held
//     the lock reported a takeover, and no window reported one without a
//     cause (an injection, a killed holder or a lost lock file);
//   - a lock file removed or replaced under a holder is noticed by it.
//
// The checker is conservative about time. A tenure is known to be held
// between the return of its acquire and the call of its release; it may
// have begun as early as the call of its acquire (or the release of the
// tenure before it) and ended as late as the return of its release (or the
// acquire of the tenure after it). An injection is "unheld" only if it is
// clear of every tenure's widest extent by a guard band, "attributed" if it
// lies within a tenure's certain extent (a bypassing write during someone
// else's tenure is that holder's, by design), and "ambiguous" otherwise;
// ambiguous injections neither require nor excuse a takeover.
//
// Run it with the command in harness/cmd/stress; its worker processes are
// re-executions of that command (or, in tests, of the test binary).
//
// The harness only runs on Linux: it reads /proc, sends signals and, in its
// tests, mounts file systems.
package stress
