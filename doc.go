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
// Whether the session file is as a tenure left it is decided by a
// Fingerprint. FingerprintStat compares identity, size, mtime and ctime, and
// reads content only where the file system's timestamps are too coarse to
// show a change made right after the snapshot (the racy rule).
// FingerprintContent compares a SHA-256 digest of the content, so a file
// whose inode number or timestamps flap is not mistaken for a changed one.
// FingerprintAuto, the default, uses content on network and FUSE file
// systems and stat elsewhere (see InspectFileSystem). When a takeover only
// appended complete lines to content that was verified intact,
// TakeoverError.PureAppend says so, and the caller can reload just the
// appended bytes. Inspect reads a lock's state without taking it.
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
//
// While a session is in use, its lock file stays open in the process
// between tenures, and each tenure locks it with flock(2) on that
// descriptor and checks that the file at the path is still the one it
// locked, so a tenure costs a handful of system calls instead of opening
// the file. An unused lock file closes after half a second, at most 64
// stay open unused, and they are closed at once when an acquire finds the
// process out of descriptors. Like any open file, they make a read-only remount or an
// unmount of their file system fail as busy: CloseIdleLockFiles closes them
// at once. Windows, network and FUSE file systems keep none open between
// tenures. Waiting for a lock held by another process goes through
// gofrs/flock.
package sessionlock

// BUG(sessionlock): Across processes, the order in which waiters get the
// lock is the kernel's, and only goroutines of one process queue in arrival
// order. A process waits with at most one blocking flock(2) call per
// contended lock file and at most 8 in all; beyond that, waiters poll with
// backoff, which adds up to 25ms to their hand-off.

// BUG(sessionlock): In FingerprintContent mode every snapshot reads the
// whole session file (one pass at acquire and one at release), so a fence
// cycle costs two SHA-256 passes over the file; stat mode reads nothing
// where timestamps are fine-grained.

// BUG(sessionlock): Tenures of one session file should agree on the
// fingerprint mode. A tenure in content mode that follows a stat-mode
// release has no digest to compare with, so it falls back to stat for that
// comparison, and where stat flaps that can report a takeover that did not
// happen. FingerprintAuto gives every process the same mode on the same
// file system.

// BUG(sessionlock): On platforms where gofrs/flock uses fcntl record locks
// (AIX, Solaris, illumos), closing any descriptor of the lock file drops the
// process's lock, and this package opens the lock file more than once; use
// it on Linux, macOS, FreeBSD or Windows.

// BUG(sessionlock): On Windows a fingerprint has no status-change time:
// ChangeTime repeats the last write time, which programs can set, so a
// same-size rewrite that restores the write time is seen only when the
// snapshot carries a digest.
