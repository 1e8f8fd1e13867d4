//go:build linux

package sessionlock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sessionlock/sessionlock"
)

// fdIdleSessions is how many sessions the child uses before it runs out of
// descriptors: enough to leave the most idle lock files open.
const fdIdleSessions = 64

func init() {
	// fdlimit DIR: leave idle lock files open, use up every descriptor the
	// process may have, then acquire a session not used before. Prints
	// "ok GEN" when that acquire worked.
	childModes["fdlimit"] = func(args []string) int {
		dir := args[0]
		ctx := context.Background()
		for i := range fdIdleSessions {
			l, err := sessionlock.AcquireSessionWriteLock(ctx, filepath.Join(dir, fmt.Sprintf("idle%d.jsonl", i)))
			if err == nil {
				err = l.Release()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		lim.Cur = min(lim.Cur, 256)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var filler []*os.File
		for {
			f, err := os.Open(os.DevNull)
			if errors.Is(err, syscall.EMFILE) {
				break
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			filler = append(filler, f)
		}
		l, err := sessionlock.AcquireSessionWriteLock(ctx, filepath.Join(dir, "new.jsonl"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ok", l.Epoch(), len(filler))
		return 0
	}
}

// A process out of descriptors can still acquire: the lock files that the
// package keeps open between tenures give way first.
func TestAcquireWhenOutOfDescriptorsClosesIdleLockFiles(t *testing.T) {
	out := runChild(t, "fdlimit", t.TempDir())
	require.Regexp(t, `^ok \d+ \d+$`, out)
}
