package stress

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionlock/sessionlock"
)

// runInjector changes session files (or their lock files) behind the
// lock's back at random moments until stopped, logging each change with
// the monotonic times just before and just after it.
func runInjector(sp *Spec, log *eventLog, stop <-chan struct{}) error {
	rng := rand.New(rand.NewPCG(sp.Seed, 0x1a7ec7))
	for n := 1; ; n++ {
		pause := sp.InjectEvery/2 + time.Duration(rng.Int64N(int64(sp.InjectEvery)+1))
		select {
		case <-stop:
			return nil
		case <-time.After(pause):
		}

		session := sp.Sessions[rng.IntN(len(sp.Sessions))]
		path := filepath.Join(sp.Dir, session)
		op := sp.Inject[rng.IntN(len(sp.Inject))]
		marker := fmt.Sprintf("{%s:%d,\"op\":%q}\n", injectedLineMarker, n, op)
		t0 := Now()
		noop, err := inject(op, path, []byte(marker), rng)
		t1 := Now()

		rec := &InjectRecord{Op: op, Noop: noop}
		if st, ierr := sessionlock.Inspect(path); ierr == nil {
			rec.Gen = st.Generation
		}
		e := Event{Kind: evInject, Worker: sp.Proc, Session: session, T0: t0, T1: t1, Inject: rec}
		if err != nil {
			e.Err = err.Error()
		}
		log.write(e)
	}
}

// inject makes one change of kind op to the session file at path (or its
// lock file). It reports noop when there was nothing to change.
func inject(op, path string, marker []byte, rng *rand.Rand) (noop bool, err error) {
	lockPath := path + ".lock"
	switch op {
	case opAppend:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return false, err
		}
		_, err = f.Write(marker)
		return false, errors.Join(err, f.Close())

	case opRewrite:
		return rewriteLine(path, rng)

	case opTruncate:
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && st.Size() == 0) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return false, os.Truncate(path, rng.Int64N(st.Size()))

	case opReplace, opRecreate:
		old, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		content := append(old, marker...)
		if op == opRecreate {
			if err := os.Remove(path); err != nil {
				return false, err
			}
			return false, os.WriteFile(path, content, 0o644)
		}
		tmp := path + ".inject"
		if err := os.WriteFile(tmp, content, 0o644); err != nil {
			return false, err
		}
		return false, os.Rename(tmp, path)

	case opLockRemove:
		err := os.Remove(lockPath)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, err

	case opLockMoveEmpty, opLockMoveGarbage:
		var content []byte
		if op == opLockMoveGarbage {
			content = []byte("this is not a sessionlock ledger\n")
		}
		tmp := lockPath + ".inject"
		if err := os.WriteFile(tmp, content, 0o644); err != nil {
			return false, err
		}
		return false, os.Rename(tmp, lockPath)
	}
	return false, fmt.Errorf("unknown injection %q", op)
}

// rewriteLine overwrites one line of the file in place with filler of the
// same length and puts the modification time back, as an editor that
// preserves timestamps would: the size and mtime stay, only the content
// (and the ctime, which no program can set) change.
func rewriteLine(path string, rng *rand.Rand) (noop bool, err error) {
	content, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	lines := bytes.SplitAfter(content, []byte("\n"))
	var off int
	var target []byte
	for _, i := range rng.Perm(len(lines)) {
		if len(bytes.TrimSuffix(lines[i], []byte("\n"))) > 0 {
			target = bytes.TrimSuffix(lines[i], []byte("\n"))
			for _, l := range lines[:i] {
				off += len(l)
			}
			break
		}
	}
	if target == nil {
		return true, nil
	}
	filler := bytes.Repeat([]byte{'#'}, len(target))
	if bytes.Equal(filler, target) {
		filler = bytes.Repeat([]byte{'%'}, len(target))
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return false, err
	}
	_, err = f.WriteAt(filler, int64(off))
	if err = errors.Join(err, f.Close()); err != nil {
		return false, err
	}
	return false, os.Chtimes(path, time.Time{}, st.ModTime())
}
