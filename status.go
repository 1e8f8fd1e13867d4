package sessionlock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Status is a snapshot of a session file's lock, for diagnostics and
// operator tools. It is read without taking the lock, so it can be stale by
// the time it is used.
type Status struct {
	SessionFile string
	LockFile    string
	// LockFileExists is false before the first tenure.
	LockFileExists bool
	// Held says whether some process held the file lock at the moment of
	// the probe (a non-blocking attempt that is released at once).
	Held bool
	// Holder is the open tenure recorded in the ledger, or nil. A holder
	// with Held false died or lost its lock mid-tenure; the next acquirer
	// closes its tenure. Held with no Holder means the lock is held by a
	// process that does not keep the ledger, such as flock(1).
	Holder           *Holder
	HolderGeneration uint64
	// HolderOnThisHost says whether the holder's host name is this host's;
	// only then does HolderAlive say whether the holder's process still
	// runs. On Linux a pid recycled for a process that started after the
	// holder's counts as dead; elsewhere any process with the pid counts as
	// alive.
	HolderOnThisHost bool
	HolderAlive      bool
	// Generation is the highest generation in the ledger.
	Generation uint64
	// LedgerError says why the ledger could not be read ("" when it was):
	// the next tenure will treat the history as unknown.
	LedgerError string
	// Tenures are the most recent closed tenures, oldest first.
	Tenures []Tenure
	// LastBreak is the most recent break in the chain, or nil.
	LastBreak *Break
	// Mode is the fingerprint mode of the open tenure, or of the last
	// closed one ("" when none is recorded).
	Mode string
	// FileSystem describes the file system holding the session file.
	FileSystem FileSystem
}

// Break is a point where the chain of tenures broke, as the ledger
// recorded it.
type Break struct {
	// Generation is the tenure that found the break (for an intrusion, the
	// tenure during which it happened).
	Generation uint64
	Cause      Cause
	Change     Change
	At         time.Time
	// DeadHolder is the holder that died mid-tenure, for CauseHolderDied.
	DeadHolder *Holder
	Detail     string
}

// Inspect reads the state of sessionFile's lock without taking it and
// without creating anything: whether it is held, the holder and the recent
// history from the ledger, and the last break. A missing lock file is not
// an error. Path errors are as for AcquireSessionWriteLock.
func Inspect(sessionFile string) (*Status, error) {
	canon, err := canonicalize("inspect", sessionFile)
	if err != nil {
		return nil, err
	}
	st := &Status{SessionFile: canon, LockFile: canon + lockSuffix}
	if err := checkLockFile("inspect", st.LockFile); err != nil {
		return nil, err
	}
	st.FileSystem = knownFileSystem(filepath.Dir(canon))

	if _, err := os.Lstat(st.LockFile); errors.Is(err, fs.ErrNotExist) {
		return st, nil
	} else if err != nil {
		return nil, &fs.PathError{Op: "inspect", Path: st.LockFile, Err: unwrapPathError(err)}
	}
	st.LockFileExists = true

	probe := flock.New(st.LockFile, flock.SetFlag(os.O_RDONLY|oNoFollow))
	ok, err := probe.TryLock()
	if err != nil {
		return nil, &fs.PathError{Op: "inspect", Path: st.LockFile, Err: unwrapPathError(err)}
	}
	if ok {
		_ = probe.Unlock()
	}
	st.Held = !ok

	raw, err := readUnlockedLedger(st.LockFile)
	if err != nil {
		return nil, &fs.PathError{Op: "inspect", Path: st.LockFile, Err: unwrapPathError(err)}
	}
	s, err := decodeLedger(raw)
	if err != nil {
		st.LedgerError = err.Error()
		return st, nil
	}
	st.fill(s)
	return st, nil
}

func (st *Status) fill(s *ledgerState) {
	st.Generation = s.Generation
	if s.Open != nil {
		h := s.Open.holder()
		st.Holder, st.HolderGeneration, st.Mode = &h, s.Open.Gen, s.Open.Mode
		st.HolderOnThisHost = h.Host == self.Host
		st.HolderAlive = st.HolderOnThisHost && processAlive(h.PID) &&
			(h.ProcessStart.IsZero() || !processStartedAfter(h.PID, h.ProcessStart))
	}
	for _, line := range s.Tenures {
		t := line.record()
		st.Tenures = append(st.Tenures, t.export())
	}
	if st.Mode == "" && len(st.Tenures) > 0 {
		st.Mode = st.Tenures[len(st.Tenures)-1].Mode
	}
	if n := len(s.Breaks); n > 0 {
		b := s.Breaks[n-1]
		br := &Break{Generation: b.Gen, Cause: parseCause(b.Cause), Change: parseChange(b.Change),
			At: time.Unix(0, b.At), Detail: b.Detail}
		if b.Dead != nil {
			h := b.Dead.holder()
			br.DeadHolder = &h
		}
		st.LastBreak = br
	}
}
