package stress_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// waiterSettle is how long a test lets a waiting child get into its
// polling loop before it changes the lock file. The assertions hold
// whether or not the child got that far (an acquire call in progress is
// waiting either way); the pause only makes the interesting case likely.
const waiterSettle = 50 * time.Millisecond

// lockFileChanges are the ways a lock file is lost: removed, or replaced
// by renaming another file over it (empty, or not a ledger).
var lockFileChanges = []struct {
	name   string
	change func(t *testing.T, lockPath string)
}{
	{"rm", func(t *testing.T, lockPath string) { require.NoError(t, os.Remove(lockPath)) }},
	{"mv empty file", func(t *testing.T, lockPath string) { moveOver(t, lockPath, "") }},
	{"mv other file", func(t *testing.T, lockPath string) { moveOver(t, lockPath, "not a ledger\n") }},
}

func moveOver(t *testing.T, lockPath, content string) {
	t.Helper()
	tmp := lockPath + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, lockPath))
}

// A lock file removed or replaced while one process holds the lock and
// another waits for it: the holder learns at release that its lock was
// lost; the waiter gets the lock (on the new file, once the holder has let
// go of the old one at the latest), and records the lost history as a
// break; a fence spanning it all reports a takeover. Whether the waiter
// gets the new file while the holder still holds the old one depends on
// how it waits (a non-blocking attempt opens the path anew, a blocked
// flock(2) stays on the old file); if it does, the two overlap, and the
// holder's ErrLockLost is what makes that overlap noticed.
func TestLockFileLostWhileHeldAndWaitedOn(t *testing.T) {
	for _, c := range lockFileChanges {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "session.jsonl")
			runChild(t, "tenures", file, "setup", "1")
			fence := openFence(t, file, "{\"turn\":1}\n")

			holder := startChild(t, "hold", file, "holder")
			require.Equal(t, "waiting", holder.readLine(t))
			var held uint64
			_, err := fmt.Sscanf(holder.readLine(t), "held %d", &held)
			require.NoError(t, err)
			waiter := startChild(t, "hold", file, "waiter")
			require.Equal(t, "waiting", waiter.readLine(t))
			time.Sleep(waiterSettle)

			c.change(t, file+".lock")

			_, err = holder.Stdin.Write([]byte("release\n"))
			require.NoError(t, err)
			line := holder.readLine(t)
			require.True(t, strings.HasPrefix(line, "release-error lost=true "), "the holder must learn its lock was lost: %q", line)

			line = waiter.readLine(t)
			require.True(t, strings.HasPrefix(line, "held "), "the waiter must get the lock: %q", line)
			st, err := sessionlock.Inspect(file)
			require.NoError(t, err)
			require.True(t, st.Held)
			require.NotNil(t, st.Holder)
			require.Equal(t, "waiter", st.Holder.Owner)
			require.NotNil(t, st.LastBreak, "the lost history must be recorded")
			require.Equal(t, sessionlock.CauseUnknownHistory, st.LastBreak.Cause)
			require.Empty(t, st.LedgerError)
			_, err = waiter.Stdin.Write([]byte("release\n"))
			require.NoError(t, err)
			require.Equal(t, "released", waiter.readLine(t))

			te := requireTakeover(t, reacquire(fence))
			require.Contains(t, []sessionlock.Cause{sessionlock.CauseUnknownHistory, sessionlock.CauseGenerationRegressed}, te.Cause, "%v", te)

			// The lines both holders appended are there: a lost lock
			// file breaks exclusion, not the data.
			content, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Contains(t, string(content), `"w":"holder"`)
			require.Contains(t, string(content), `"w":"waiter"`)
		})
	}
}

// A lock file removed or replaced during the fence's own tenure: the
// fence reports a takeover with CauseLockLost when it releases for the
// prompt, and its Close reports ErrLockLost.
func TestLockFileLostDuringFenceTenure(t *testing.T) {
	for _, c := range lockFileChanges {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "session.jsonl")
			l := acquire(t, file, sessionlock.WithOwner("controller"))
			_, err := l.Append([]byte("{\"turn\":1}\n"))
			require.NoError(t, err)
			fence := sessionlock.NewPromptFence(l)

			c.change(t, l.LockFile())

			te := requireTakeover(t, fence.ReleaseForPrompt())
			require.Equal(t, sessionlock.CauseLockLost, te.Cause)
			require.ErrorIs(t, fence.Close(), sessionlock.ErrLockLost)
		})
	}
}

// When a ledger is lost while a fence is released, the next acquirer in a
// process that has not seen the file's generations starts the new ledger
// at generation 1 and records the loss as a break there. Once enough
// tenures have run for the generation to pass the fence's, the fence's
// Reacquire finds a generation that grew and no break after its own, and
// accepts the window, although the session's history was lost in it and,
// here, a writer that bypassed the lock appended a line in the same
// window.
//
// DESIGN.md §2: "any loss of history is visible". Fails at the time of
// writing: ledgerState.begin (epoch.go) starts the new ledger from the
// acquiring process's highestGeneration, and PromptFence.verdict
// (fence.go) only looks for breaks after the fence's own generation and
// for a generation that did not grow. The harness's lockfile phase finds
// the same case as missed takeovers, across processes whose highest
// generations differ by a few.
func TestLedgerLossIsVisibleAfterGenerationsRegrowPastTheFence(t *testing.T) {
	for _, c := range lockFileChanges {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "session.jsonl")
			// The controller, in its own process, takes a few tenures and
			// releases its fence at generation 4.
			controller := startChild(t, "fence", file, "controller", "3")
			var g0 uint64
			_, err := fmt.Sscanf(controller.readLine(t), "released %d", &g0)
			require.NoError(t, err)
			require.Equal(t, uint64(4), g0)

			c.change(t, file+".lock")
			bypass, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = bypass.WriteString("{\"by\":\"a writer that never took the lock\"}\n")
			require.NoError(t, err)
			require.NoError(t, bypass.Close())

			// A co-tenant in a fresh process takes g0+2 tenures.
			last := runChild(t, "tenures", file, "cron", fmt.Sprint(g0+2))
			require.Equal(t, fmt.Sprint(g0+2), last, "the new ledger starts at generation 1")

			_, err = controller.Stdin.Write([]byte("reacquire\n"))
			require.NoError(t, err)
			verdict := controller.readLine(t)
			require.True(t, strings.HasPrefix(verdict, "takeover "),
				"the fence accepted a window in which the ledger was lost and a bypassing write was made: %q", verdict)
		})
	}
}
