package sessionlock_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// openFenceMode is openFence with a fingerprint mode.
func openFenceMode(t *testing.T, path, initial string, mode sessionlock.FingerprintMode) *sessionlock.PromptFence {
	t.Helper()
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), path,
		sessionlock.WithOwner("controller"), sessionlock.WithFingerprintMode(mode))
	require.NoError(t, err)
	if initial != "" {
		require.NoError(t, os.WriteFile(path, []byte(initial), 0o644))
	}
	pf := sessionlock.NewPromptFence(l)
	t.Cleanup(func() { _ = pf.Close() })
	return pf
}

func replaceWith(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", []byte(content), 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func TestAutoModeIsStatOnALocalFileSystem(t *testing.T) {
	dir := t.TempDir()
	fsys, err := sessionlock.InspectFileSystem(dir)
	require.NoError(t, err)
	require.False(t, fsys.Remote, "the test directory is on a local file system (%s)", fsys.Type)
	require.Equal(t, sessionlock.FingerprintStat, fsys.AutoMode())

	pf := openFenceMode(t, sessionPath(t), "", sessionlock.FingerprintAuto)
	require.Equal(t, sessionlock.FingerprintStat, pf.FingerprintMode())
	require.Equal(t, sessionlock.FingerprintStat, pf.Lock().FingerprintMode())

	forced := openFenceMode(t, sessionPath(t), "", sessionlock.FingerprintContent)
	require.Equal(t, sessionlock.FingerprintContent, forced.FingerprintMode())
	require.NoError(t, forced.ReleaseForPrompt())
	require.Equal(t, sessionlock.FingerprintContent, forced.FingerprintMode(), "the mode of the last tenure while released")
}

func TestInspectFileSystemRejectsAFile(t *testing.T) {
	p := sessionPath(t)
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	_, err := sessionlock.InspectFileSystem(p)
	require.Error(t, err)
}

func TestIdenticalContentReplaceIsAcceptedOnlyInContentMode(t *testing.T) {
	const content = "{\"a\":1}\n{\"b\":2}\n"
	for _, tc := range []struct {
		mode     sessionlock.FingerprintMode
		takeover bool
	}{
		{sessionlock.FingerprintContent, false},
		{sessionlock.FingerprintStat, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := sessionPath(t)
			pf := openFenceMode(t, p, content, tc.mode)
			require.NoError(t, pf.ReleaseForPrompt())
			replaceWith(t, p, content)
			err := pf.Reacquire(context.Background())
			if !tc.takeover {
				require.NoError(t, err)
				return
			}
			requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Replaced)
		})
	}
}

func TestTimestampDriftWithSameContentIsAcceptedOnlyInContentMode(t *testing.T) {
	for _, tc := range []struct {
		mode     sessionlock.FingerprintMode
		takeover bool
	}{
		{sessionlock.FingerprintContent, false},
		{sessionlock.FingerprintStat, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := sessionPath(t)
			pf := openFenceMode(t, p, "{\"a\":1}\n", tc.mode)
			require.NoError(t, pf.ReleaseForPrompt())
			drift := time.Now().Add(-time.Hour)
			require.NoError(t, os.Chtimes(p, drift, drift)) // mtime and ctime both move
			err := pf.Reacquire(context.Background())
			if !tc.takeover {
				require.NoError(t, err)
				return
			}
			requireTakeover(t, err, sessionlock.CauseBypass, sessionlock.Rewritten)
		})
	}
}

func TestEveryModeDetectsADifferentFileAtThePath(t *testing.T) {
	for _, mode := range []sessionlock.FingerprintMode{sessionlock.FingerprintAuto, sessionlock.FingerprintStat, sessionlock.FingerprintContent} {
		t.Run(mode.String(), func(t *testing.T) {
			p := sessionPath(t)
			pf := openFenceMode(t, p, "{\"a\":1}\n", mode)
			require.NoError(t, pf.ReleaseForPrompt())
			replaceWith(t, p, "{\"a\":2}\n")
			requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseBypass, sessionlock.Replaced)
		})
	}
}

func TestContentModeDetectsEveryBypass(t *testing.T) {
	for _, bc := range bypasses {
		t.Run(bc.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFenceMode(t, p, bc.initial, sessionlock.FingerprintContent)
			require.NoError(t, pf.ReleaseForPrompt())
			require.NoError(t, bc.do(p))
			requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseBypass, bc.change)
		})
	}
}

func TestContentModeAcceptsCoTenants(t *testing.T) {
	p := sessionPath(t)
	pf := openFenceMode(t, p, "{\"turn\":0}\n", sessionlock.FingerprintContent)
	for round := 0; round < 5; round++ {
		require.NoError(t, pf.ReleaseForPrompt())
		l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p,
			sessionlock.WithOwner("heartbeat"), sessionlock.WithFingerprintMode(sessionlock.FingerprintContent))
		require.NoError(t, err)
		_, err = l.Append([]byte("{\"beat\":1}\n"))
		require.NoError(t, err)
		require.NoError(t, l.Release())
		coTenant(t, p, "reader", nil)
		require.NoError(t, pf.Reacquire(context.Background()))
		w := pf.Window()
		require.Len(t, w.Tenures, 2)
		require.Len(t, w.Writers(), 1)
		require.Equal(t, "heartbeat", w.Writers()[0].Owner)
	}
}

func TestAppendVerdictSaysWhatToReload(t *testing.T) {
	cases := []struct {
		name     string
		initial  string
		appended string
		mode     sessionlock.FingerprintMode
		verified bool
		lines    bool
	}{
		{"complete line, content mode", "{\"a\":1}\n", "{\"b\":2}\n", sessionlock.FingerprintContent, true, true},
		{"two complete lines, content mode", "{\"a\":1}\n", "{\"b\":2}\n{\"c\":3}\n", sessionlock.FingerprintContent, true, true},
		{"partial line, content mode", "{\"a\":1}\n", "{\"b\":", sessionlock.FingerprintContent, true, false},
		{"old content without final newline", "{\"a\":1}", "\n{\"b\":2}\n", sessionlock.FingerprintContent, true, false},
		{"stat mode does not read content", "{\"a\":1}\n", "{\"b\":2}\n", sessionlock.FingerprintStat, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sessionPath(t)
			pf := openFenceMode(t, p, tc.initial, tc.mode)
			require.NoError(t, pf.ReleaseForPrompt())
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString(tc.appended)
			require.NoError(t, err)
			require.NoError(t, f.Close())

			te := requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseBypass, sessionlock.Appended)
			require.Equal(t, int64(len(tc.initial)), te.AppendedFrom)
			require.Equal(t, int64(len(tc.initial)+len(tc.appended)), te.AppendedTo)
			require.Equal(t, tc.verified, te.PrefixVerified)
			require.Equal(t, tc.verified && tc.lines, te.CompleteLines)
			require.Equal(t, tc.verified && tc.lines, te.PureAppend())
		})
	}
}

func TestGrowthThatAltersOldContentIsNotAnAppend(t *testing.T) {
	p := sessionPath(t)
	pf := openFenceMode(t, p, "{\"a\":1}\n", sessionlock.FingerprintContent)
	require.NoError(t, pf.ReleaseForPrompt())
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("{\"a\":9}\n{\"b\":2}\n"), 0) // same inode, longer, old bytes changed
	require.NoError(t, err)
	require.NoError(t, f.Close())
	te := requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseBypass, sessionlock.Rewritten)
	require.False(t, te.PureAppend())
}

func TestContentModeCatchesSameSizeIntrusionDuringAnAppendingTenure(t *testing.T) {
	p := sessionPath(t)
	pf := openFenceMode(t, p, "{\"a\":1}\n", sessionlock.FingerprintContent)
	require.NoError(t, pf.ReleaseForPrompt())

	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p,
		sessionlock.WithOwner("cron"), sessionlock.WithFingerprintMode(sessionlock.FingerprintContent))
	require.NoError(t, err)
	_, err = l.Append([]byte("{\"cron\":1}\n"))
	require.NoError(t, err)
	// An intruder rewrites the first record in place, same size, and puts
	// the timestamps back: only content shows it.
	st, err := os.Stat(p)
	require.NoError(t, err)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("{\"a\":2}\n"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Chtimes(p, st.ModTime(), st.ModTime()))
	_, err = l.Append([]byte("{\"cron\":2}\n"))
	require.NoError(t, err)
	require.NoError(t, l.Release())

	requireTakeover(t, pf.Reacquire(context.Background()), sessionlock.CauseIntrusion, sessionlock.Rewritten)
}

func TestContentModeAppendOnlyTenureIsNotAnIntrusion(t *testing.T) {
	p := sessionPath(t)
	pf := openFenceMode(t, p, "", sessionlock.FingerprintContent)
	_, err := pf.Lock().Append([]byte("{\"turn\":1}\n"))
	require.NoError(t, err)
	require.NoError(t, pf.ReleaseForPrompt(), "the fence's own appends are not an intrusion")
	l, err := sessionlock.AcquireSessionWriteLock(context.Background(), p,
		sessionlock.WithOwner("cron"), sessionlock.WithFingerprintMode(sessionlock.FingerprintContent))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err = l.Append([]byte("{\"cron\":1}\n"))
		require.NoError(t, err)
	}
	require.NoError(t, l.Release())
	require.NoError(t, pf.Reacquire(context.Background()))
}
