// Package sessionlock guards the session files of an agent runtime: the
// append-mostly JSON Lines transcripts that the controller of a run writes
// and keeps in memory, while other writers touch the same file. Those are
// co-tenants in the same process (heartbeat, cron, channel ingress,
// compaction), cooperating writers in other processes, and writers that
// bypass the lock altogether (an editor, a sync client, a script).
//
// Writers take an exclusive write lock on the session file with
// AcquireSessionWriteLock and write records with Lock.Append. One period of
// holding the lock, from acquire to Lock.Release, is a tenure, and each
// tenure gets the next generation of that session file (Lock.Epoch),
// counted across every process that uses this package. The count lives in
// a ledger inside the lock file, <session>.lock, written only under the
// lock: the current generation and
// holder, the session file's fingerprint at the last release, a short
// history of tenures, and the breaks found so far. Each acquire compares the
// session file with the last release; a difference means someone wrote while
// nobody held the lock, and it is recorded as a break at the new generation.
//
// A controller does not hold the lock across a model prompt. It hands its
// tenure to a PromptFence, calls ReleaseForPrompt before the prompt and
// Reacquire after it. If the chain of tenures between the two is unbroken,
// every change in the window was made by a holder of the lock, such as a
// co-tenant: Reacquire returns nil and PromptFence.Window reports the epoch
// delta and which tenures wrote. If the chain broke, Reacquire returns a
// *TakeoverError wrapping ErrSessionTakeover; the fence then holds the lock
// again, so the controller can reload the session before it trusts its view.
//
//	l, err := sessionlock.AcquireSessionWriteLock(ctx, path, sessionlock.WithOwner("controller"))
//	if err != nil {
//		return err
//	}
//	fence := sessionlock.NewPromptFence(l)
//	defer fence.Close()
//
//	if _, err := fence.Lock().Append(record); err != nil {
//		return err
//	}
//	if err := fence.ReleaseForPrompt(); err != nil {
//		return err
//	}
//	reply := prompt(ctx, transcript) // others may take the lock meanwhile
//	err = fence.Reacquire(ctx)
//	if errors.Is(err, sessionlock.ErrSessionTakeover) {
//		transcript, err = reload(path) // the fence holds the lock again
//	}
//	if err != nil {
//		return err
//	}
//	_, err = fence.Lock().Append(reply)
//	return err
//
// The lock is advisory: it excludes only writers that take it. The ledger
// looks at the session file when a tenure begins and ends, so a bypassing
// write made during another holder's tenure is attributed to that holder,
// unless the holder wrote only through Lock.Append, which knows what the
// file must look like and records any other change as an intrusion. A
// process that takes the file lock without keeping the ledger, for example
// flock(1) wrapped around a shell command, counts as bypassing: its change
// shows as a break at the next acquire. On NFS, flock is emulated with
// byte-range locks, and not every client recovers a lock after a lease loss.
// On Windows, LockFileEx locking is mandatory on the locked byte, so the
// ledger starts after it, and file identity comes from the volume serial
// number and file index. The package never deletes or renames lock files:
// removing one that someone holds would let a second holder in.
package sessionlock

// BUG(sessionlock): Across processes, a waiter polls the file lock with
// backoff, so processes are not served in arrival order and a waiter can be
// overtaken repeatedly; only goroutines of one process queue in order.

// BUG(sessionlock): A difference in stat fields is not confirmed by reading
// the content, and network and FUSE file systems are not detected. Where
// stat flaps for an unchanged file (SMB/CIFS, NFS, some FUSE file systems,
// drifting ctime on Btrfs), Reacquire can report a takeover that did not
// happen.

// BUG(sessionlock): On Windows a fingerprint has no status-change time:
// ChangeTime repeats the last write time, which programs can set, so a
// same-size rewrite that restores the write time is seen only when the
// snapshot carries a digest.
