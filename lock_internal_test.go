package sessionlock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// queuePollInterval is how often a test checks that a goroutine has joined
// the in-process queue.
const queuePollInterval = 200 * time.Microsecond

// waitersOf returns how many goroutines wait in the in-process queue for key.
func waitersOf(key string) int {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	if q := queues[key]; q != nil {
		return len(q.waiters)
	}
	return 0
}

// waitForWaiters blocks until n goroutines wait for key.
func waitForWaiters(t *testing.T, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for waitersOf(key) != n {
		if time.Now().After(deadline) {
			t.Fatalf("expected %d waiters, have %d", n, waitersOf(key))
		}
		time.Sleep(queuePollInterval)
	}
}

func TestGoroutinesAreServedInArrivalOrder(t *testing.T) {
	const n = 8
	p := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()

	first, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)

	// order is guarded only by the session lock: the race detector checks
	// that each hand-off orders one holder's writes before the next's.
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := AcquireSessionWriteLock(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			order = append(order, i)
			if err := l.Release(); err != nil {
				t.Error(err)
			}
		}()
		waitForWaiters(t, first.SessionFile(), i+1)
	}
	require.NoError(t, first.Release())
	wg.Wait()

	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, order)
	require.Zero(t, waitersOf(first.SessionFile()))
	CloseIdleLockFiles()
	queuesMu.Lock()
	_, left := queues[first.SessionFile()]
	queuesMu.Unlock()
	require.False(t, left, "a session whose lock file was closed must leave no queue behind")
}

func TestCancelledWaiterLeavesQueueAndOthersKeepOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	holder, err := AcquireSessionWriteLock(ctx, p, WithOwner("controller"))
	require.NoError(t, err)
	key := holder.SessionFile()

	var order []string
	done := make(chan struct{}, 2)
	start := func(name string) {
		go func() {
			defer func() { done <- struct{}{} }()
			l, err := AcquireSessionWriteLock(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			order = append(order, name)
			_ = l.Release()
		}()
	}

	start("a")
	waitForWaiters(t, key, 1)
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := AcquireSessionWriteLock(cctx, p)
		errc <- err
	}()
	waitForWaiters(t, key, 2)
	start("c")
	waitForWaiters(t, key, 3)

	cancel()
	err = <-errc
	require.ErrorIs(t, err, context.Canceled)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	require.NotNil(t, we.Holder, "the holder is in the ledger")
	require.Equal(t, "controller", we.Holder.Owner)
	require.Equal(t, os.Getpid(), we.Holder.PID)
	require.Contains(t, err.Error(), `"controller"`)
	waitForWaiters(t, key, 2)

	require.NoError(t, holder.Release())
	<-done
	<-done
	require.Equal(t, []string{"a", "c"}, order)
}

func TestLockFileReplacedBeforeVerificationIsRetried(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	l, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	lockPath := l.LockFile()

	calls := 0
	testHookLocked = func(string) {
		calls++
		if calls == 1 {
			// Someone replaces the lock file after our open and flock:
			// the locked inode is no longer at the path.
			tmp := lockPath + ".new"
			require.NoError(t, os.WriteFile(tmp, nil, 0o644))
			require.NoError(t, os.Rename(tmp, lockPath))
		}
	}
	t.Cleanup(func() { testHookLocked = nil })

	l2, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.Equal(t, 2, calls, "the first lock guarded a replaced file and must be retried")
	held, err := l2.h.f.Stat()
	require.NoError(t, err)
	atPath, err := os.Lstat(lockPath)
	require.NoError(t, err)
	require.True(t, os.SameFile(held, atPath), "the held lock file is the one at the path")
	require.NoError(t, l2.Release())
}

func TestLedgerRoundTrip(t *testing.T) {
	s := &ledgerState{}
	fp := Fingerprint{Exists: true, Device: 1, Inode: 2, Size: 3, ModTime: 4, ChangeTime: 5, HasDigest: true}
	fp.Digest[0] = 0xab
	me := self
	me.Owner = "owner with \"quotes\"\nand a newline"
	g := s.begin(continuity{known: true, ref: fp, cur: fp, change: Unchanged}, me, time.Unix(100, 0))
	require.Equal(t, uint64(1), g)
	s.end(fp, false, time.Unix(101, 0))

	raw, err := encodeLedger(s)
	require.NoError(t, err)
	got, err := decodeLedger(raw)
	require.NoError(t, err)
	s.lastClosed = nil // a cache of the encoder's, not part of the ledger
	require.Equal(t, s, got)
	back, err := got.LastRelease.fingerprint()
	require.NoError(t, err)
	require.True(t, back.Equal(fp))
	require.Equal(t, fp.Digest, back.Digest)
}

func TestLedgerDecoderRejectsEveryTruncationAndBitFlip(t *testing.T) {
	s := &ledgerState{}
	fp := Fingerprint{Exists: true, Size: 10}
	for i := 0; i < 40; i++ {
		s.begin(continuity{known: true, ref: fp, cur: fp, change: Unchanged}, self, time.Unix(int64(i), 0))
		s.end(fp, false, time.Unix(int64(i), 1))
	}
	raw, err := encodeLedger(s)
	require.NoError(t, err)
	require.Len(t, s.Tenures, tenureHistory, "the tenure history is bounded")

	for n := 0; n < len(raw)-1; n++ {
		if _, err := decodeLedger(raw[:n]); err == nil {
			t.Fatalf("a ledger cut to %d of %d bytes was accepted", n, len(raw))
		}
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			b := append([]byte(nil), raw...)
			b[i] ^= bit
			got, err := decodeLedger(b)
			if err == nil && !equalLedger(got, s) {
				t.Fatalf("flipping bit %#x of byte %d gave a different ledger that decoded", bit, i)
			}
		}
	}
}

// equalLedger tolerates differences that cannot change a verdict: only the
// human-readable holder line is outside the checksum.
func equalLedger(a, b *ledgerState) bool {
	ra, _ := encodeLedger(a)
	rb, _ := encodeLedger(b)
	return string(ra) == string(rb)
}

func TestCorruptLedgerErrorsAreTyped(t *testing.T) {
	for _, raw := range []string{"", "\x00\x00", "garbage", ledgerHeader + "\n", ledgerHeader + "\ndata: {}\ncrc32c: 00000000\n"} {
		_, err := decodeLedger([]byte(raw))
		require.Error(t, err)
		var ce *corruptLedgerError
		require.True(t, errors.As(err, &ce) || errors.Is(err, errEmptyLedger), "%q: %v", raw, err)
	}
}

func FuzzDecodeLedger(f *testing.F) {
	s := &ledgerState{}
	fp := Fingerprint{Exists: true, Size: 10, HasDigest: true}
	for i := 0; i < 3; i++ {
		s.begin(continuity{known: true, ref: fp, cur: fp, change: Unchanged}, self, time.Unix(int64(i), 0))
		s.end(fp, false, time.Unix(int64(i), 1))
	}
	s.begin(continuity{known: true, ref: fp, cur: fp, change: Appended}, self, time.Unix(9, 0))
	raw, err := encodeLedger(s)
	require.NoError(f, err)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte(ledgerHeader + "\ndata: {}\ncrc32c: 00000000\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeLedger(raw)
		if err != nil {
			return
		}
		// Whatever decodes must be a ledger the protocol can continue.
		require.NoError(t, s.validate())
		again, err := encodeLedger(s)
		require.NoError(t, err)
		s2, err := decodeLedger(again)
		require.NoError(t, err)
		require.True(t, equalLedger(s, s2))
		_ = s.reference()
		s.begin(continuity{known: true, ref: s.reference(), cur: fp, change: Unchanged}, self, time.Now())
	})
}

// countScans counts content reads while the test runs.
func countScans(t *testing.T) *int {
	t.Helper()
	n := new(int)
	var mu sync.Mutex
	testHookScan = func(string) {
		mu.Lock()
		*n++
		mu.Unlock()
	}
	t.Cleanup(func() { testHookScan = nil })
	return n
}

func TestStatModeReadsNoContentWhereTimestampsAreFine(t *testing.T) {
	dir := t.TempDir()
	if !fineTimestamps(dir) {
		t.Skip("the test directory's file system has coarse timestamps; the racy rule reads content there")
	}
	p := filepath.Join(dir, "s.jsonl")
	require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte("{\"x\":1}\n"), 1000), 0o644))
	scans := countScans(t)
	ctx := context.Background()

	l, err := AcquireSessionWriteLock(ctx, p, WithFingerprintMode(FingerprintStat))
	require.NoError(t, err)
	pf := NewPromptFence(l)
	for i := 0; i < 5; i++ {
		require.NoError(t, pf.ReleaseForPrompt())
		co, err := AcquireSessionWriteLock(ctx, p)
		require.NoError(t, err)
		_, err = co.Append([]byte("{\"beat\":1}\n"))
		require.NoError(t, err)
		require.NoError(t, co.Release())
		require.NoError(t, pf.Reacquire(ctx))
	}
	require.NoError(t, pf.Close())
	require.Zero(t, *scans, "no content read in stat mode on a file system with fine timestamps")
}

func TestContentModeReadsOncePerSnapshot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte("{\"x\":1}\n"), 1000), 0o644))
	ctx := context.Background()
	l, err := AcquireSessionWriteLock(ctx, p, WithFingerprintMode(FingerprintContent))
	require.NoError(t, err)
	pf := NewPromptFence(l)

	scans := countScans(t)
	const windows = 4
	for i := 0; i < windows; i++ {
		require.NoError(t, pf.ReleaseForPrompt())
		require.NoError(t, pf.Reacquire(ctx))
	}
	require.Equal(t, 2*windows, *scans, "one read at release and one at acquire")
	require.NoError(t, pf.Close())
}

func TestBlockingWaitsAreCappedAcrossSessions(t *testing.T) {
	const sessions = maxKernelWaiters + 36
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Another open file description holds each lock file, as another
	// process would.
	var paths []string
	for i := 0; i < sessions; i++ {
		p := filepath.Join(dir, fmt.Sprintf("s%03d.jsonl", i))
		paths = append(paths, p)
		holder := newFlock(p + lockSuffix)
		ok, err := holder.TryLock()
		require.NoError(t, err)
		require.True(t, ok)
		t.Cleanup(func() { _ = holder.Unlock() })
	}

	errs := make(chan error, sessions)
	for _, p := range paths {
		go func() {
			_, err := AcquireSessionWriteLock(ctx, p)
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		queuesMu.Lock()
		n := len(kernelWaiters)
		queuesMu.Unlock()
		if n == maxKernelWaiters {
			break
		}
		require.Less(t, n, maxKernelWaiters+1, "never more blocking waits than the cap")
		require.True(t, time.Now().Before(deadline), "only %d blocking waits started", n)
		time.Sleep(queuePollInterval)
	}
	cancel()
	for range paths {
		require.ErrorIs(t, <-errs, context.Canceled)
	}
}

func TestStatusTellsARecycledPidFromItsHolder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process start times are read from /proc on Linux only")
	}
	open := func(procStart int64) *ledgerState {
		me := self
		me.ProcStart = procStart
		s := &ledgerState{}
		s.begin(continuity{known: true}, me, time.Now())
		return s
	}

	var st Status
	st.fill(open(self.ProcStart))
	require.True(t, st.HolderOnThisHost)
	require.True(t, st.HolderAlive, "this process is the holder")

	// A holder whose process started long before this one cannot be this
	// process, though it has our pid: the pid was recycled.
	st = Status{}
	st.fill(open(time.Now().Add(-24 * 365 * time.Hour).UnixNano()))
	require.False(t, st.HolderAlive, "a newer process has the holder's pid")
}

// openUnder counts this process's open descriptors on files in dir, or
// skips where /proc/self/fd does not exist. Counting only dir's files keeps
// descriptors that other tests close in the background out of the count.
func openUnder(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors here: %v", err)
	}
	n := 0
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

func idleCount() int {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	return len(idleQueues)
}

// Lock files stay open between tenures of a session in use, at most
// maxIdleHandles of them, and all close once idle for idleTimeout.
func TestIdleLockFilesAreBoundedAndClose(t *testing.T) {
	if !keepLockFiles {
		t.Skip("this platform keeps no lock files open between tenures")
	}
	CloseIdleLockFiles()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	require.Zero(t, openUnder(t, dir))
	ctx := context.Background()

	p := filepath.Join(dir, "s.jsonl")
	l, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	require.Equal(t, 1, openUnder(t, dir), "a session just used keeps its lock file open")
	l, err = AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.Equal(t, 1, openUnder(t, dir), "the next tenure reuses the open lock file")
	require.NoError(t, l.Release())

	for i := range 2 * maxIdleHandles {
		l, err := AcquireSessionWriteLock(ctx, filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i)))
		require.NoError(t, err)
		require.NoError(t, l.Release())
	}
	require.Equal(t, maxIdleHandles, idleCount())
	require.Equal(t, maxIdleHandles, openUnder(t, dir), "idle lock files are bounded")

	deadline := time.Now().Add(10 * idleTimeout)
	for idleCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(idleTimeout / 10)
	}
	require.Zero(t, idleCount(), "idle lock files close after idleTimeout")
	require.Zero(t, openUnder(t, dir))
	queuesMu.Lock()
	left := len(queues)
	queuesMu.Unlock()
	require.Zero(t, left, "closed sessions leave no queue behind")
}

// A decoded ledger kept from the previous tenure is used only while the
// lock file holds exactly the bytes this process wrote.
func TestCachedLedgerIsUsedOnlyWhileUnchanged(t *testing.T) {
	if !keepLockFiles {
		t.Skip("this platform keeps no lock files open between tenures")
	}
	p := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	l, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	lockPath := l.LockFile()

	queuesMu.Lock()
	h := &queues[l.SessionFile()].h
	queuesMu.Unlock()
	require.NotNil(t, h.state, "the released tenure's ledger is kept")

	// Another writer rewrites the ledger in place with a higher
	// generation: the next tenure must read it, not the kept copy.
	raw, err := os.ReadFile(lockPath)
	require.NoError(t, err)
	s, err := decodeLedger(raw)
	require.NoError(t, err)
	jump := highestGeneration.Load() + 100
	s.Generation = jump
	s.LastReleaseGen = jump
	rewritten, err := encodeLedger(s)
	require.NoError(t, err)
	_, err = decodeLedger(rewritten)
	require.NoError(t, err)
	f, err := os.OpenFile(lockPath, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(rewritten, ledgerOffset)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(ledgerOffset+int64(len(rewritten))))
	require.NoError(t, f.Close())

	l, err = AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	require.Equal(t, jump+1, l.Epoch())
	require.NoError(t, l.Release())
}

// BenchmarkLedgerCodec measures encoding and decoding a ledger with a full
// tenure history and one break, the common case after a few dozen tenures.
// A tenure decodes the ledger whenever another process wrote it last, and
// encodes it twice.
func BenchmarkLedgerCodec(b *testing.B) {
	s := &ledgerState{}
	now := time.Now()
	fp := Fingerprint{Exists: true, Size: 1 << 20, ModTime: now.UnixNano(), ChangeTime: now.UnixNano(), Device: 64769, Inode: 1234567}
	s.begin(continuity{cur: fp, why: "no ledger in the lock file"}, self, now)
	s.end(fp, false, now)
	for range 2 * tenureHistory {
		s.begin(continuity{known: true, ref: fp, cur: fp, change: Unchanged}, self, now)
		s.end(fp, false, now)
	}
	raw, err := encodeLedger(s)
	require.NoError(b, err)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := decodeLedger(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		buf := make([]byte, 0, 2*len(raw))
		for b.Loop() {
			buf = appendLedger(buf[:0], s)
		}
	})
}

// CloseIdleLockFiles leaves held locks, and sessions that goroutines wait
// for, alone.
func TestCloseIdleLockFilesLeavesHeldLocks(t *testing.T) {
	if !keepLockFiles {
		t.Skip("this platform keeps no lock files open between tenures")
	}
	p := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	held, err := AcquireSessionWriteLock(ctx, p)
	require.NoError(t, err)
	got := make(chan *Lock)
	go func() {
		l, err := AcquireSessionWriteLock(ctx, p)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitForWaiters(t, held.SessionFile(), 1)

	CloseIdleLockFiles()
	_, err = held.Append([]byte("still held\n"))
	require.NoError(t, err)
	require.NoError(t, held.Release())
	next := <-got
	require.NotNil(t, next)
	require.Equal(t, held.Epoch()+1, next.Epoch())
	require.NoError(t, next.Release())
}
