package sessionlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// sessionFileMode is the permission for a session file that Append
// creates, before the umask.
const sessionFileMode = 0o644

// Append writes p to the end of the session file in a single write,
// creating the file if it does not exist, and returns the number of bytes
// written. Writers that share a file through this package never see each
// other's records torn, because each record is one write made under the
// lock.
//
// A tenure that writes only through Append also lets the lock see
// intruders: the lock knows what the file must look like after each
// append, so a change made during the tenure by anyone else (a writer that
// bypasses the lock while this tenure is open) is recorded as a break at
// this tenure's generation when the tenure ends, and every fence whose
// window includes the tenure reports a takeover with CauseIntrusion. A
// tenure that mixes Append with other writes to the session file is
// reported the same way; use one or the other.
//
// Append on a released Lock returns an error wrapping ErrNotHeld.
func (l *Lock) Append(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return 0, &fs.PathError{Op: "append", Path: l.sessionFile, Err: ErrNotHeld}
	}

	ref := l.acquired
	if l.expect != nil {
		ref = *l.expect
	}
	f, created, err := l.openForAppend(ref)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	st, err := f.Stat()
	if err != nil {
		return 0, &fs.PathError{Op: "append", Path: l.sessionFile, Err: unwrapPathError(err)}
	}
	before := fingerprintFromInfo(l.sessionFile, st)
	if created {
		ref = before
	}
	if l.mode != FingerprintContent {
		// In content mode stat may flap; the digest predicted from the
		// appends is checked at release instead.
		l.noteIntrusion(ref, before)
	}

	n, err := f.Write(p)
	if l.predict != nil {
		l.predict.Write(p[:n])
	}
	after, serr := f.Stat()
	if serr == nil {
		fp := fingerprintFromInfo(l.sessionFile, after)
		l.expect = &fp
	}
	if err != nil {
		return n, &fs.PathError{Op: "append", Path: l.sessionFile, Err: unwrapPathError(err)}
	}
	if serr != nil {
		return n, &fs.PathError{Op: "append", Path: l.sessionFile, Err: unwrapPathError(serr)}
	}
	return n, nil
}

// openForAppend opens the session file for appending. When the file is
// expected not to exist, it is created exclusively, so a file that someone
// else created in the meantime is noticed rather than adopted.
func (l *Lock) openForAppend(ref Fingerprint) (f *os.File, created bool, err error) {
	if !ref.Exists {
		f, err = os.OpenFile(l.sessionFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, sessionFileMode)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, &fs.PathError{Op: "append", Path: l.sessionFile, Err: unwrapPathError(err)}
		}
	}
	f, err = os.OpenFile(l.sessionFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, sessionFileMode)
	if err != nil {
		return nil, false, &fs.PathError{Op: "append", Path: l.sessionFile, Err: unwrapPathError(err)}
	}
	return f, false, nil
}

// noteIntrusion records the first difference between what the tenure's own
// appends left (ref) and what is there now (cur), by stat.
func (l *Lock) noteIntrusion(ref, cur Fingerprint) {
	if l.intrusion != nil {
		return
	}
	if change := ref.ChangeTo(cur); change != Unchanged {
		l.recordIntrusion(ref, cur, change)
	}
}

// recordIntrusion keeps the first intrusion of the tenure; Release writes
// it to the ledger as a break at the tenure's generation.
func (l *Lock) recordIntrusion(ref, cur Fingerprint, change Change) {
	if l.intrusion != nil {
		return
	}
	l.intrusion = &breakRecord{
		Gen: l.gen, Cause: CauseIntrusion.String(), Change: change.String(),
		Before: recordOf(ref), After: recordOf(cur), At: time.Now().UnixNano(),
		Detail: fmt.Sprintf("changed during tenure %d by a writer other than Append", l.gen),
	}
}
