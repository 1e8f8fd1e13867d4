package sessionlock

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// lockFileMode is the permission for a new lock file, before the umask.
// Cooperating processes of other users need to write the ledger too.
const lockFileMode = 0o666

// Option configures AcquireSessionWriteLock.
type Option func(*options)

type options struct {
	mode       FingerprintMode
	owner      string
	logger     *slog.Logger
	holdLimit  time.Duration
	onHeldLong func(sessionFile string, held time.Duration)
}

// WithOwner names the holder, for diagnostics: "controller", "heartbeat",
// "cron". The name is stored in the ledger (clipped to 64 bytes) and shown
// to anyone who waits for the lock or inspects it.
func WithOwner(name string) Option {
	return func(o *options) { o.owner = clip(name, maxNameBytes) }
}

// WithLogger sends diagnostics (tenures opened and closed, breaks found) to
// logger. Without it, or with a nil logger, the library logs nothing.
func WithLogger(logger *slog.Logger) Option {
	return func(o *options) { o.logger = logger }
}

// WithHeldTooLong reports a tenure that lasts longer than limit: report is
// called once, from its own goroutine, with the session file and how long
// the lock has been held, and a warning is logged when a logger is set.
// The lock is never taken away from its holder; this only makes a stuck
// holder visible. A nil report only logs.
func WithHeldTooLong(limit time.Duration, report func(sessionFile string, held time.Duration)) Option {
	return func(o *options) { o.holdLimit, o.onHeldLong = limit, report }
}

// log logs when a logger is set. Its arguments are boxed before the call,
// which allocates, so calls on the path of every tenure check o.logger
// first.
func (o *options) log(level slog.Level, msg string, args ...any) {
	if o.logger != nil {
		o.logger.Log(context.Background(), level, msg, args...)
	}
}

// Lock is one tenure of the exclusive write lock on a session file. It is
// created by AcquireSessionWriteLock and ends with Release. Its methods are
// safe for concurrent use, but the tenure belongs to one logical writer: the
// lock excludes other holders, not other goroutines that share the *Lock.
type Lock struct {
	mu          sync.Mutex
	opts        options
	sessionFile string
	lockPath    string
	q           *turnQueue // the session's queue; this tenure has its turn
	h           *handle    // the session's open lock file, q.h
	// fl is the lock when a kernel waiter took it on a descriptor of its
	// own (see waiter.go); nil when the tenure locked h.f.
	fl        *flock.Flock
	state     *ledgerState
	ledgerLen int       // bytes of ledger (and padding) in the lock file
	lockInfo  shortStat // the lock file at its path, as lstat saw it once locked
	gen       uint64
	acquired  Fingerprint
	fine      bool // the file system's timestamps show every change
	remote    bool // network or FUSE: stat may flap
	mode      FingerprintMode
	released  bool

	// expect is the session file's state after this tenure's last Append,
	// and intrusion the first change that Append did not make; both stay
	// nil for tenures that do not use Append.
	expect    *Fingerprint
	intrusion *breakRecord
	// predict, in content mode, is the hash of the content at acquire
	// followed by every appended byte: the digest the file must have at
	// release if all writes went through Append.
	predict hash.Hash

	holdTimer *time.Timer // fires when the tenure is held too long
}

// AcquireSessionWriteLock blocks until the calling goroutine holds the
// exclusive write lock for sessionFile, or ctx ends.
//
// The session file need not exist; its directory must. The lock file is
// <canonical session path>.lock, created on first use and never removed by
// this package. Goroutines of one process are served in arrival order;
// other processes are excluded with flock(2) (LockFileEx on Windows), so
// util-linux flock(1) on the same lock file excludes and is excluded.
//
// Acquiring opens a tenure: it checks that the session file is as the last
// tenure left it, records a break in the ledger if not, and takes the next
// generation (see Lock.Epoch).
//
// If ctx ends first, the error is a *WaitError that wraps ctx.Err() and
// names the current holder. Bad input returns a *fs.PathError wrapping
// ErrInvalidPath or ErrLockFileNotRegular, and nothing is created.
func AcquireSessionWriteLock(ctx context.Context, sessionFile string, opts ...Option) (*Lock, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	canon, err := canonicalize("acquire", sessionFile)
	if err != nil {
		return nil, err
	}
	return acquire(ctx, canon, o)
}

func acquire(ctx context.Context, canon string, o options) (*Lock, error) {
	lockPath := canon + lockSuffix
	if err := ctx.Err(); err != nil {
		return nil, waitError(canon, lockPath, err)
	}
	q, err := takeTurn(ctx, canon, &o)
	if err != nil {
		return nil, waitError(canon, lockPath, err)
	}
	l := &Lock{opts: o, sessionFile: canon, lockPath: lockPath, q: q, h: &q.h}
	if err := l.lockFile(ctx); err != nil {
		l.h.close()
		giveTurn(q)
		return nil, err
	}
	if err := l.open(); err != nil {
		l.unlockFile()
		l.h.close()
		giveTurn(q)
		return nil, err
	}
	return l, nil
}

// testHookLocked, when set by a test, runs right after the file lock is
// taken and before the locked file is compared with the one at the path.
var testHookLocked func(lockPath string)

// lockFile takes the cross-process lock on the lock file and makes sure the
// locked file is the one at the path: if someone removed or replaced it
// since it was opened, the lock guards nothing, and we reopen and retry.
func (l *Lock) lockFile(ctx context.Context) error {
	h := l.h
	for {
		fl, err := l.takeFileLock(ctx)
		if err != nil {
			return err
		}
		l.fl = fl
		if testHookLocked != nil {
			testHookLocked(l.lockPath)
		}
		same, err := l.verifyLocked()
		if err != nil {
			l.unlockFile()
			return err
		}
		if same {
			return nil
		}
		l.unlockFile()
		h.close()
		l.opts.log(slog.LevelDebug, "sessionlock: lock file replaced while locking; retrying", "lock", l.lockPath)
	}
}

// unlockFile releases the cross-process lock.
func (l *Lock) unlockFile() {
	if l.fl != nil {
		_ = l.fl.Unlock()
		l.fl = nil
		return
	}
	if l.h.f != nil {
		_ = unlockFile(l.h.f)
	}
}

// takeFileLock takes the cross-process lock on the lock file: on the
// handle (opened first if need be) at once if it is free, else from the
// session's kernel waiter (see waiter.go), which returns the lock on a
// descriptor of its own. It returns an error when ctx ends first.
func (l *Lock) takeFileLock(ctx context.Context) (*flock.Flock, error) {
	delay := pollMin
	var timer *time.Timer
	kw := pendingKernelWaiter(l.sessionFile)
	for kw == nil {
		select {
		case tryLockSlots <- struct{}{}:
		case <-ctx.Done():
			return nil, waitError(l.sessionFile, l.lockPath, ctx.Err())
		}
		if l.h.f == nil {
			// Opening counts against the throttle too: thousands of
			// sessions opened at once would each block a thread.
			if err := l.h.open(l.lockPath); err != nil {
				<-tryLockSlots
				return nil, err
			}
		}
		ok, err := tryLockFile(l.h.f)
		<-tryLockSlots
		if err != nil {
			return nil, &fs.PathError{Op: "acquire", Path: l.lockPath, Err: fmt.Errorf("cannot lock: %w", err)}
		}
		if ok {
			return nil, nil
		}
		if kw = kernelWaiterFor(l.sessionFile, l.lockPath); kw != nil {
			break
		}
		// Too many blocking attempts in flight: poll.
		if timer == nil {
			timer = time.NewTimer(delay)
			defer timer.Stop()
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return nil, waitError(l.sessionFile, l.lockPath, ctx.Err())
		case <-timer.C:
		}
		delay = min(delay*2, pollMax)
	}
	select {
	case <-kw.done:
		fl, err := kw.claim(l.sessionFile)
		if err != nil {
			return nil, openError(l.lockPath, err)
		}
		return fl, nil
	case <-ctx.Done():
		return nil, waitError(l.sessionFile, l.lockPath, ctx.Err())
	}
}

// verifyLocked reports whether the file at the lock path is the one this
// tenure locked, and makes sure the handle's descriptor is open on it for
// ledger I/O.
func (l *Lock) verifyLocked() (bool, error) {
	cur, err := lstatShort(l.lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "acquire", Path: l.lockPath, Err: unwrapPathError(err)}
	}
	if !cur.mode.IsRegular() {
		return false, notRegularError("acquire", l.lockPath, cur.mode)
	}
	h := l.h
	l.lockInfo = cur
	l.learnFileSystem()
	if l.fl == nil {
		return h.info.same(cur) || l.lockedAtPath(), nil
	}
	// A kernel waiter locked its own descriptor: that file must be the one
	// at the path, and the handle must be open on it too.
	locked, err := l.fl.Stat()
	if err != nil {
		return false, &fs.PathError{Op: "acquire", Path: l.lockPath, Err: unwrapPathError(err)}
	}
	if !shortStatOf(locked).same(cur) && !l.lockedAtPath() {
		return false, nil
	}
	if !h.info.same(cur) {
		if err := h.open(l.lockPath); err != nil {
			return false, err
		}
		if !h.info.same(cur) && !l.lockedAtPath() {
			return false, nil
		}
		l.learnFileSystem()
	}
	return true, nil
}

// lockedAtPath is the identity test for file systems whose inode numbers
// flap (network and FUSE file systems report a different inode for the
// same file from one stat to the next, so comparing them would retry
// forever). It asks the kernel instead: a fresh open of the lock path is a
// separate open file description from the one we locked, so a non-blocking
// flock on it fails exactly when the file at the path is locked. That
// holds when the file at the path is ours.
//
// What it gives up: if the lock file was replaced and someone else has
// already locked the replacement, the test cannot tell their lock from
// ours. Replacing a lock file is outside the protocol (the library never
// does it), and on local file systems the inode comparison decides.
func (l *Lock) lockedAtPath() bool {
	if !l.remote {
		return false
	}
	// Writable: where flock is emulated with byte-range locks (NFS), an
	// exclusive lock needs a descriptor open for writing.
	f, err := os.OpenFile(l.lockPath, os.O_RDWR|oNoFollow, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return lockedElsewhere(f)
}

// learnFileSystem sets what the tenure needs to know about the session's
// file system. The handle learns it once per open lock file: after
// locking, the lock file's stat saves a stat of the directory.
func (l *Lock) learnFileSystem() {
	h := l.h
	if !h.fsKnown {
		h.fsys = fileSystemOf(filepath.Dir(l.sessionFile), l.lockInfo.fi)
		h.fsKnown = true
	}
	l.fine, l.remote, l.mode = h.fsys.FineTimestamps, h.fsys.Remote, l.opts.mode.resolve(h.fsys)
}

// openError turns a failure to open the lock file into a clear error: a
// lock path that turned into a symbolic link or another non-regular file
// reports that; anything else (permission, read-only file system) is
// reported as the operating system said it.
func openError(lockPath string, err error) error {
	if cerr := checkLockFile("acquire", lockPath); cerr != nil {
		return cerr
	}
	return &fs.PathError{Op: "acquire", Path: lockPath, Err: fmt.Errorf("cannot open lock file: %w", unwrapPathError(err))}
}

func notRegularError(op, lockPath string, mode fs.FileMode) error {
	return &fs.PathError{Op: op, Path: lockPath, Err: fmt.Errorf("%w: it is a %s", ErrLockFileNotRegular, describeType(mode))}
}

// open runs steps 2 and 3 of the protocol with the file lock held: read the
// ledger, check continuity, open the tenure in the ledger.
func (l *Lock) open() error {
	bufp := ledgerBuffers.Get().(*[]byte)
	defer ledgerBuffers.Put(bufp)
	raw, err := readLedgerSized(l.h.f, l.lockInfo.size-ledgerOffset, (*bufp)[:0])
	*bufp = raw[:0]
	if err != nil {
		return &fs.PathError{Op: "acquire", Path: l.lockPath, Err: fmt.Errorf("reading ledger: %w", err)}
	}
	l.ledgerLen = len(raw)
	cached := l.h.cached(raw)

	cur, err := statFingerprint(l.sessionFile)
	if err != nil {
		return err
	}
	c := continuity{known: true, cur: cur}
	var sc *scan
	state, derr := cached, error(nil)
	if state == nil {
		state, derr = decodeLedger(raw)
	}
	if derr != nil {
		c.known, c.why = false, derr.Error()
		state = &ledgerState{}
		if l.mode == FingerprintContent && cur.Exists {
			s, err := scanFile(l.sessionFile, 0)
			if err != nil {
				return err
			}
			c.cur, sc = s.fp, &s
		}
	} else {
		c.ref = state.reference()
		c.change, c.cur, c.app, sc, err = compare(l.sessionFile, c.ref, cur, l.mode, !l.remote)
		if err != nil {
			return err
		}
	}
	if l.mode == FingerprintContent {
		if sc != nil && sc.fp.Exists {
			l.predict = cloneHash(sc.state)
		} else {
			l.predict = sha256.New()
		}
	}

	me := self
	me.Owner = l.opts.owner
	me.Mode = l.mode.String()
	now := time.Now()
	l.gen = state.begin(c, me, now)
	l.state = state
	l.acquired = c.cur
	if err := l.writeLedger(); err != nil {
		return err
	}
	if l.mode == FingerprintStat && !l.fine && c.cur.Exists && !c.cur.HasDigest {
		// Apply the racy rule to the acquire snapshot as well, so that a
		// same-size rewrite by this holder within the same clock tick
		// still counts as a write in the tenure record.
		racy, err := l.racy(c.cur)
		if err != nil {
			return err
		}
		if racy {
			if l.acquired, err = withDigest(l.sessionFile); err != nil {
				return err
			}
		}
	}

	if !c.known {
		l.opts.log(slog.LevelWarn, "sessionlock: unknown history; ledger rewritten", "session", l.sessionFile, "reason", c.why, "generation", l.gen)
	} else if b := state.firstBreakAfter(l.gen - 1); b != nil {
		l.opts.log(slog.LevelWarn, "sessionlock: chain broken", "session", l.sessionFile, "cause", b.Cause, "change", b.Change, "generation", l.gen)
	}
	if l.opts.logger != nil { // the arguments alone would allocate
		l.opts.log(slog.LevelDebug, "sessionlock: tenure opened", "session", l.sessionFile, "generation", l.gen, "owner", l.opts.owner)
	}
	if l.opts.holdLimit > 0 {
		l.holdTimer = time.AfterFunc(l.opts.holdLimit, l.heldTooLong(now))
	}
	return nil
}

func (l *Lock) heldTooLong(since time.Time) func() {
	return func() {
		held := time.Since(since)
		l.opts.log(slog.LevelWarn, "sessionlock: lock held too long", "session", l.sessionFile,
			"generation", l.gen, "owner", l.opts.owner, "held", held)
		if l.opts.onHeldLong != nil {
			l.opts.onHeldLong(l.sessionFile, held)
		}
	}
}

// readLedgerSized reads the ledger when its size is known (the lock is
// held, so it cannot change): one read instead of reading to EOF.
func readLedgerSized(f *os.File, size int64, buf []byte) ([]byte, error) {
	if size < 0 {
		size = 0
	}
	if size > maxLedgerBytes {
		// Too large to be a ledger: read enough for the decoder to say so.
		size = maxLedgerBytes + 1
	}
	buf = slices.Grow(buf[:0], int(size))[:size]
	n, err := f.ReadAt(buf, ledgerOffset)
	if err == io.EOF {
		err = nil
	}
	return buf[:n], err
}

// readUnlockedLedger reads the lock file's ledger bytes without taking the
// lock (for diagnostics), never through a symbolic link, and no more than
// the decoder needs to reject an oversized ledger.
func readUnlockedLedger(lockPath string) ([]byte, error) {
	f, err := os.OpenFile(lockPath, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, ledgerOffset, maxLedgerBytes+1))
}

// maxLedgerPadding is how much shorter a new ledger may be than the old one
// before the lock file is cut to size instead of padded.
const maxLedgerPadding = 1024

// writeLedger stores l.state in the lock file with one write in place. A
// shorter ledger is padded with spaces over the old one's tail (the decoder
// ignores what follows the checksum line), which saves cutting the file on
// every release; only a much shorter one is cut. A reader never sees two
// ledgers mixed, and a torn write (a crash mid-call) fails the checksum and
// reads as unknown history, which is safe.
func (l *Lock) writeLedger() error {
	bufp := ledgerBuffers.Get().(*[]byte)
	buf := appendLedger((*bufp)[:0], l.state)
	defer func() { *bufp = buf[:0]; ledgerBuffers.Put(bufp) }()
	short := l.ledgerLen - len(buf)
	if short > 0 && short <= maxLedgerPadding {
		buf = append(buf, make([]byte, short)...)
		pad := buf[len(buf)-short:]
		for i := range pad {
			pad[i] = ' '
		}
		pad[len(pad)-1] = '\n'
	}
	// The handle may still pair the old bytes with l.state, which the
	// tenure has changed since; it pairs them again once the write is done.
	l.h.forget()
	if _, err := l.h.f.WriteAt(buf, ledgerOffset); err != nil {
		return &fs.PathError{Op: "write ledger", Path: l.lockPath, Err: unwrapPathError(err)}
	}
	if len(buf) < l.ledgerLen {
		if err := l.h.f.Truncate(ledgerOffset + int64(len(buf))); err != nil {
			return &fs.PathError{Op: "write ledger", Path: l.lockPath, Err: unwrapPathError(err)}
		}
	}
	l.ledgerLen = len(buf)
	l.h.remember(buf, l.state)
	return nil
}

// Epoch returns this tenure's generation. Generations grow by one with each
// tenure of a session file, in every process that uses this package, for as
// long as the ledger in the lock file is intact; after a loss of the ledger
// they continue above every generation this process has seen, and the loss
// is recorded as a break.
func (l *Lock) Epoch() uint64 { return l.gen }

// SessionFile returns the canonical path of the session file.
func (l *Lock) SessionFile() string { return l.sessionFile }

// LockFile returns the path of the lock file that holds the ledger.
func (l *Lock) LockFile() string { return l.lockPath }

// Release ends the tenure: it records the session file's fingerprint in the
// ledger, closes the tenure there, and unlocks. It is safe to call more than
// once; calls after the first do nothing and return nil.
//
// The lock is released even when Release returns an error. An error
// wrapping ErrLockLost means the lock file was removed or replaced during
// the tenure, so another process may have held a lock at the same time.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	defer l.releaseLocked()

	if err := l.checkStillLocked("release"); err != nil {
		return err
	}
	fp, err := l.snapshot()
	if err != nil {
		// Leave the tenure open in the ledger: the next acquirer treats it
		// like a holder that died, which is the safe reading.
		return err
	}
	return l.close(fp)
}

// releaseLocked unlocks and ends the tenure without touching the ledger.
// The caller holds l.mu.
func (l *Lock) releaseLocked() {
	if l.released {
		return
	}
	l.released = true
	if l.holdTimer != nil {
		l.holdTimer.Stop()
	}
	l.unlockFile()
	if !keepLockFiles || l.remote {
		l.h.close()
	}
	l.state = nil // the handle keeps it for the next tenure
	giveTurn(l.q)
}

// snapshot fingerprints the session file at the end of the tenure, in the
// tenure's mode, and notes any change that the tenure's appends did not
// make. The caller holds l.mu.
func (l *Lock) snapshot() (Fingerprint, error) {
	if l.mode == FingerprintContent {
		s, err := scanFile(l.sessionFile, 0)
		if err != nil {
			return Fingerprint{}, err
		}
		if l.expect != nil && l.predict != nil && l.intrusion == nil {
			want := Fingerprint{Exists: true, Size: l.expect.Size, HasDigest: true}
			l.predict.Sum(want.Digest[:0])
			if !s.fp.Exists || s.fp.Size != want.Size || s.fp.Digest != want.Digest {
				want.Device, want.Inode = s.fp.Device, s.fp.Inode
				l.recordIntrusion(want, s.fp, classify(want, &s, FingerprintContent, false))
			}
		}
		return s.fp, nil
	}

	fp, err := statFingerprint(l.sessionFile)
	if err != nil {
		return fp, err
	}
	if !l.fine && fp.Exists && l.acquired.HasDigest && fp.sameStat(l.acquired) {
		// Equal stat on a coarse clock proves nothing: compare content to
		// tell whether this tenure wrote.
		if fp, err = withDigest(l.sessionFile); err != nil {
			return fp, err
		}
	}
	if l.expect != nil {
		l.noteIntrusion(*l.expect, fp)
	}
	return fp, nil
}

// close records the end of the tenure in the ledger. The caller holds l.mu
// and releases the file lock afterwards.
func (l *Lock) close(fp Fingerprint) error {
	if l.intrusion != nil {
		l.state.addBreak(*l.intrusion)
		l.opts.log(slog.LevelWarn, "sessionlock: session file changed during tenure outside Append",
			"session", l.sessionFile, "generation", l.gen, "change", l.intrusion.Change)
	}
	l.state.end(fp, tenureWrote(l.acquired, fp, l.mode), time.Now())
	if err := l.writeLedger(); err != nil {
		return err
	}
	if l.mode == FingerprintStat && !l.fine && fp.Exists && !fp.HasDigest {
		if err := l.settleRacy(fp); err != nil {
			return err
		}
	}
	if l.opts.logger != nil {
		l.opts.log(slog.LevelDebug, "sessionlock: tenure closed", "session", l.sessionFile, "generation", l.gen)
	}
	return nil
}

// tenureWrote says whether the session file changed between a tenure's
// acquire and release snapshots. In content mode only existence and content
// count, since stat may flap.
func tenureWrote(in, out Fingerprint, mode FingerprintMode) bool {
	if mode == FingerprintContent && in.HasDigest && out.HasDigest {
		return in.Digest != out.Digest || in.Size != out.Size
	}
	return in.ChangeTo(out) != Unchanged
}

// FingerprintMode returns the mode this tenure uses: FingerprintStat or
// FingerprintContent (FingerprintAuto is resolved at acquire).
func (l *Lock) FingerprintMode() FingerprintMode { return l.mode }

// settleRacy applies the racy rule to the release snapshot on a file system
// whose timestamps can miss a change. The ledger write just made gives the
// lock file a timestamp from the same file system clock, taken after the
// snapshot. If that timestamp is not later than the session file's, a
// change made now could leave the session file's stat unchanged, so the
// snapshot is backed with a content digest instead.
func (l *Lock) settleRacy(fp Fingerprint) error {
	racy, err := l.racy(fp)
	if err != nil || !racy {
		return err
	}
	digested, err := withDigest(l.sessionFile)
	if err != nil {
		return err
	}
	l.state.LastRelease = recordOf(digested)
	return l.writeLedger()
}

// racy reports whether a change made to the session file after snapshot fp
// could leave its timestamps unchanged. The reference clock is the lock
// file's timestamp, set by a ledger write made after the snapshot on the
// same file system; equal timestamps count as racy.
func (l *Lock) racy(fp Fingerprint) (bool, error) {
	st, err := l.h.f.Stat()
	if err != nil {
		return false, &fs.PathError{Op: "fingerprint", Path: l.lockPath, Err: unwrapPathError(err)}
	}
	ref := fingerprintFromInfo(l.lockPath, st)
	clock := max(ref.ModTime, ref.ChangeTime)
	return clock <= fp.ModTime || clock <= fp.ChangeTime, nil
}

// checkStillLocked reports ErrLockLost if the lock file at the path is no
// longer the file this tenure locked.
func (l *Lock) checkStillLocked(op string) error {
	cur, err := lstatShort(l.lockPath)
	same := err == nil && l.lockInfo.same(cur)
	if !same && err == nil {
		same = l.lockedAtPath()
	}
	if !same {
		l.opts.log(slog.LevelError, "sessionlock: lock file removed or replaced during tenure", "lock", l.lockPath, "generation", l.gen)
		return &fs.PathError{Op: op, Path: l.lockPath, Err: ErrLockLost}
	}
	return nil
}

// waitError builds the error for a wait cut short by its context, naming
// the holder that the ledger shows.
func waitError(sessionFile, lockPath string, err error) error {
	we := &WaitError{SessionFile: sessionFile, Err: err}
	if s := readLedgerFile(lockPath); s != nil && s.Open != nil {
		h := s.Open.holder()
		we.Holder, we.Generation = &h, s.Open.Gen
	}
	return we
}

// readLedgerFile reads the ledger without taking the lock, for diagnostics
// only. It returns nil when there is no readable ledger.
func readLedgerFile(lockPath string) *ledgerState {
	if checkLockFile("read", lockPath) != nil {
		return nil
	}
	raw, err := readUnlockedLedger(lockPath)
	if err != nil {
		return nil
	}
	s, err := decodeLedger(raw)
	if err != nil {
		return nil
	}
	return s
}
