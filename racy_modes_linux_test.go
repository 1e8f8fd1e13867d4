//go:build linux

package sessionlock_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// modeRounds is how many prompt windows each mode runs on the one-second
// ext4 file system; startEarlyInSecond keeps most of them inside one tick.
const modeRounds = 6

// On the one-second ext4 file system, content mode and auto mode (which is
// stat with the racy rule there, ext4 being local) must both catch a
// same-second same-size bypass and accept a same-second co-tenant rewrite.
func TestRacyExt4InContentAndAutoModes(t *testing.T) {
	dir := mountCoarseExt4(t)
	modes := []struct {
		mode sessionlock.FingerprintMode
		want sessionlock.FingerprintMode
	}{
		{sessionlock.FingerprintContent, sessionlock.FingerprintContent},
		{sessionlock.FingerprintAuto, sessionlock.FingerprintStat},
	}
	for _, m := range modes {
		t.Run(m.mode.String(), func(t *testing.T) {
			path := filepath.Join(dir, m.mode.String()+".jsonl")
			original, tampered := jsonLinesOf(originalWord), jsonLinesOf(tamperedWord)
			opts := []sessionlock.Option{sessionlock.WithOwner(ownerController), sessionlock.WithFingerprintMode(m.mode)}

			for round := 0; round < modeRounds; round++ {
				startEarlyInSecond()
				l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path, opts...)
				require.NoError(t, err)
				require.Equal(t, m.want, l.FingerprintMode())
				require.NoError(t, os.WriteFile(path, original, 0o644))
				fence := sessionlock.NewPromptFence(l)
				require.NoError(t, fence.ReleaseForPrompt())

				// A co-tenant rewrites in the same second: accepted.
				c, err := sessionlock.AcquireSessionWriteLock(context.Background(), path,
					sessionlock.WithOwner(ownerCompaction), sessionlock.WithFingerprintMode(m.mode))
				require.NoError(t, err)
				require.NoError(t, overwriteInPlace(path, tampered))
				require.NoError(t, c.Release())
				require.NoError(t, fence.Reacquire(context.Background()), "round %d", round)
				require.Len(t, fence.Window().Writers(), 1, "round %d: the co-tenant wrote", round)

				// A bypass puts the original bytes back in the same second,
				// mtime restored: a takeover.
				mid := statOf(t, path)
				require.NoError(t, fence.ReleaseForPrompt())
				bypassRewrite(t, path, original, round, mid.Mtime)
				requireBypassRewrite(t, fence.Reacquire(context.Background()), "round %d", round)
				require.NoError(t, fence.Close())
			}
		})
	}
}
