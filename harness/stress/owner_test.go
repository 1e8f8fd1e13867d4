package stress_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessionlock/sessionlock"
)

// Owner names are the caller's free text and are stored in the ledger.
// Whatever they contain, a co-tenant's tenure under the lock must leave a
// ledger that the next tenure can read, so a fence spanning it accepts.
//
// A regression test: decodeLedger (ledger.go) once took the first
// "crc32c: " anywhere in the ledger for the checksum line, so an owner name
// containing it made the ledger unreadable, the next acquire recorded an
// unknown-history break, and the fence reported a takeover that did not
// happen. FuzzFenceOnDamagedLedger found it through a break detail that
// quoted a damaged header (its seed header-contains-checksum-marker).
func TestOwnerNamesCannotBreakTheLedger(t *testing.T) {
	for _, owner := range []string{
		"cron",
		"cron (crc32c: on)",
		"line one\nline two",
		`quote " and backslash \`,
		"state 1 2 3",
		"\xff\xfe not UTF-8",
		"crc32c: 00000000",
	} {
		t.Run(owner, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "session.jsonl")
			fence := openFence(t, file, "{\"turn\":1}\n")

			l, err := acquireCtx(file, sessionlock.WithOwner(owner))
			require.NoError(t, err)
			_, err = l.Append([]byte("{\"turn\":2}\n"))
			require.NoError(t, err)
			require.NoError(t, l.Release())

			st, err := sessionlock.Inspect(file)
			require.NoError(t, err)
			require.Empty(t, st.LedgerError, "the ledger written with owner %q cannot be read", owner)
			require.NoError(t, reacquire(fence), "a co-tenant under the lock is no takeover")
			w := fence.Window()
			require.Len(t, w.Tenures, 1)
		})
	}
}
