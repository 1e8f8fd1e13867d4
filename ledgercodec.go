package sessionlock

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// The ledger's lines, after the header and the holder line, are records
// whose fields are separated by single spaces; quoted strings (Go syntax)
// come last on a line so that they may contain spaces:
//
//	state GENERATION BREAK_GEN LAST_RELEASE_GEN LEDGER_ID
//	release FP                       the fingerprint at the last release
//	open FP TENURE                   the open tenure and its state at acquire
//	tenure TENURE                    closed tenures, oldest first
//	break GEN CAUSE CHANGE AT FP|- FP|- APPEND|- "DETAIL" [dead TENURE]
//	crc32c: XXXXXXXX                 CRC-32C of every byte from "state" on
//
// FP is seven fields: EXISTS(0/1) DEV INO SIZE MTIME CTIME SHA256|-.
// TENURE is GEN PID PROC_START ACQUIRED RELEASED SIZE_IN SIZE_OUT FLAGS
// MODE "OWNER" "HOST", where FLAGS holds w (wrote) and d (died) or is -.
// APPEND is FROM TO FLAGS, with p (prefix verified) and l (complete lines).
//
// The codec is written by hand, not with encoding/json: a tenure encodes and
// decodes the ledger twice, and reflection-based JSON cost more than the
// file lock itself.

func appendFP(b []byte, r *fpRecord) []byte {
	if r == nil {
		return append(b, '-')
	}
	if r.Exists {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	for _, v := range [...]uint64{r.Dev, r.Ino} {
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
	}
	for _, v := range [...]int64{r.Size, r.Mtime, r.Ctime} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, ' ')
	if r.SHA256 == "" {
		return append(b, '-')
	}
	return append(b, r.SHA256...)
}

func appendTenure(b []byte, t *tenureRecord) []byte {
	b = strconv.AppendUint(b, t.Gen, 10)
	for _, v := range [...]int64{int64(t.PID), t.ProcStart, t.Acquired, t.Released, t.SizeIn, t.SizeOut} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, ' ')
	flags := len(b)
	if t.Wrote {
		b = append(b, 'w')
	}
	if t.Died {
		b = append(b, 'd')
	}
	if len(b) == flags {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = appendWord(b, t.Mode)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, t.Owner)
	b = append(b, ' ')
	return strconv.AppendQuote(b, t.Host)
}

func appendWord(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

func appendBreak(b []byte, k *breakRecord) []byte {
	b = append(b, "break "...)
	b = strconv.AppendUint(b, k.Gen, 10)
	b = append(b, ' ')
	b = appendWord(b, k.Cause)
	b = append(b, ' ')
	b = appendWord(b, k.Change)
	b = append(b, ' ')
	b = strconv.AppendInt(b, k.At, 10)
	b = append(b, ' ')
	b = appendFP(b, k.Before)
	b = append(b, ' ')
	b = appendFP(b, k.After)
	b = append(b, ' ')
	if a := k.Append; a == nil {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, a.From, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, a.To, 10)
		b = append(b, ' ')
		flags := len(b)
		if a.PrefixVerified {
			b = append(b, 'p')
		}
		if a.CompleteLines {
			b = append(b, 'l')
		}
		if len(b) == flags {
			b = append(b, '-')
		}
	}
	b = append(b, ' ')
	b = strconv.AppendQuote(b, k.Detail)
	if k.Dead != nil {
		b = append(b, " dead "...)
		b = appendTenure(b, k.Dead)
	}
	return b
}

// appendRecords renders the checksummed part of the ledger.
func appendRecords(b []byte, s *ledgerState) []byte {
	b = append(b, "state "...)
	b = strconv.AppendUint(b, s.Generation, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.BreakGen, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.LastReleaseGen, 10)
	b = append(b, ' ')
	b = append(b, s.ID...)
	b = append(b, '\n')
	if s.LastRelease != nil {
		b = append(b, "release "...)
		b = appendFP(b, s.LastRelease)
		b = append(b, '\n')
	}
	if s.Open != nil {
		b = append(b, "open "...)
		b = appendFP(b, s.Open.AcquireFP)
		b = append(b, ' ')
		b = appendTenure(b, s.Open)
		b = append(b, '\n')
	}
	for _, t := range s.Tenures {
		b = append(b, "tenure "...)
		b = append(b, t.text...)
		b = append(b, '\n')
	}
	if s.breakLines == nil && len(s.Breaks) > 0 {
		var lines []byte
		for i := range s.Breaks {
			lines = appendBreak(lines, &s.Breaks[i])
			lines = append(lines, '\n')
		}
		s.breakLines = lines
	}
	return append(b, s.breakLines...)
}

// fields reads the space-separated fields of one record line.
type fields struct {
	s   string
	err error
}

func (f *fields) fail(what string) {
	if f.err == nil {
		f.err = errors.New(what)
	}
}

func (f *fields) word() string {
	if f.err != nil {
		return ""
	}
	if f.s == "" {
		f.fail("missing field")
		return ""
	}
	w, rest, _ := strings.Cut(f.s, " ")
	f.s = rest
	return w
}

func (f *fields) uint() uint64 {
	w := f.word()
	v, err := strconv.ParseUint(w, 10, 64)
	if err != nil {
		f.fail("bad number " + strconv.Quote(w))
	}
	return v
}

func (f *fields) int() int64 {
	w := f.word()
	v, err := strconv.ParseInt(w, 10, 64)
	if err != nil {
		f.fail("bad number " + strconv.Quote(w))
	}
	return v
}

func (f *fields) optWord() string {
	if w := f.word(); w != "-" {
		return w
	}
	return ""
}

func (f *fields) quoted() string {
	if f.err != nil {
		return ""
	}
	q, err := strconv.QuotedPrefix(f.s)
	if err != nil {
		f.fail("bad quoted string")
		return ""
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		f.fail("bad quoted string")
		return ""
	}
	f.s = strings.TrimPrefix(f.s[len(q):], " ")
	return v
}

func (f *fields) fp() *fpRecord {
	first := f.word()
	if first == "-" {
		return nil
	}
	r := &fpRecord{}
	switch first {
	case "1":
		r.Exists = true
	case "0":
	default:
		f.fail("bad fingerprint")
	}
	r.Dev, r.Ino = f.uint(), f.uint()
	r.Size, r.Mtime, r.Ctime = f.int(), f.int(), f.int()
	if d := f.word(); d != "-" {
		if _, err := hex.DecodeString(d); err != nil || len(d) != 64 {
			f.fail("bad digest")
		}
		r.SHA256 = d
	}
	return r
}

func (f *fields) tenure() *tenureRecord {
	t := &tenureRecord{Gen: f.uint()}
	pid := f.int()
	t.PID = int(pid)
	t.ProcStart, t.Acquired, t.Released, t.SizeIn, t.SizeOut = f.int(), f.int(), f.int(), f.int(), f.int()
	flags := f.word()
	for _, c := range flags {
		switch c {
		case 'w':
			t.Wrote = true
		case 'd':
			t.Died = true
		case '-':
		default:
			f.fail("bad tenure flags")
		}
	}
	t.Mode = f.optWord()
	t.Owner = f.quoted()
	t.Host = f.quoted()
	return t
}

func (f *fields) brk() breakRecord {
	k := breakRecord{Gen: f.uint(), Cause: f.optWord(), Change: f.optWord(), At: f.int()}
	k.Before, k.After = f.fp(), f.fp()
	if first := f.word(); first != "-" {
		from, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			f.fail("bad append range")
		}
		a := &appendRecord{From: from, To: f.int()}
		for _, c := range f.word() {
			switch c {
			case 'p':
				a.PrefixVerified = true
			case 'l':
				a.CompleteLines = true
			case '-':
			default:
				f.fail("bad append flags")
			}
		}
		k.Append = a
	}
	k.Detail = f.quoted()
	if f.s != "" {
		if f.word() != "dead" {
			f.fail("unexpected field after detail")
		}
		k.Dead = f.tenure()
	}
	return k
}

func (f *fields) end() error {
	if f.err == nil && f.s != "" {
		f.fail("extra fields")
	}
	return f.err
}

// parseRecords decodes the checksummed part of the ledger.
func parseRecords(body string) (*ledgerState, error) {
	s := &ledgerState{Version: ledgerVersion}
	seenState := false
	for body != "" {
		line, rest, _ := strings.Cut(body, "\n")
		body = rest
		kind, args, _ := strings.Cut(line, " ")
		f := fields{s: args}
		switch kind {
		case "state":
			if seenState {
				return nil, corrupt("two state lines")
			}
			seenState = true
			s.Generation, s.BreakGen, s.LastReleaseGen = f.uint(), f.uint(), f.uint()
			s.ID = f.word()
			if !validLedgerID(s.ID) {
				f.fail("bad ledger id")
			}
		case "release":
			if s.LastRelease != nil {
				return nil, corrupt("two release lines")
			}
			s.LastRelease = f.fp()
			if s.LastRelease == nil {
				f.fail("empty release")
			}
		case "open":
			if s.Open != nil {
				return nil, corrupt("two open tenures")
			}
			fp := f.fp()
			s.Open = f.tenure()
			s.Open.AcquireFP = fp
		case "tenure":
			if len(s.Tenures) == tenureHistory {
				return nil, corrupt("tenure history longer than allowed")
			}
			// Only the generation is needed to continue the chain; the
			// rest is parsed when a window or a status asks for it. The
			// checksum already vouches for the text.
			gen := f.uint()
			f.s = ""
			if s.Tenures == nil {
				// Sized once: every remaining line may be a tenure.
				s.Tenures = make([]tenureLine, 0, min(strings.Count(body, "\n")+1, tenureHistory))
			}
			s.Tenures = append(s.Tenures, tenureLine{Gen: gen, text: args})
		case "break":
			if len(s.Breaks) == breakHistory {
				return nil, corrupt("break history longer than allowed")
			}
			s.Breaks = append(s.Breaks, f.brk())
		default:
			return nil, corrupt("unexpected record %.20q", kind)
		}
		if err := f.end(); err != nil {
			return nil, corrupt("%s record: %v", kind, err)
		}
	}
	if !seenState {
		return nil, corrupt("no state record")
	}
	return s, nil
}
