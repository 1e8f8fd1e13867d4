package sessionlock

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The ledger is kept inside the lock file as a few lines of text:
//
//	sessionlock ledger v2
//	holder: "cron" pid 4242 on host "gw1" since 2026-12-03T15:58:19.5Z (generation 42)
//	state 42 40 41
//	release 1 2049 1234 5120 1796316239993209633 1796316239993209633 -
//	open ...
//	tenure ...
//	break ...
//	crc32c: 1a2b3c4d
//
// The first line names the format and its version. The holder line is for
// people running cat on the lock file; it is never parsed. The records
// follow (see ledgercodec.go), and the checksum line is the CRC-32C of
// exactly the record bytes. Anything that fails to parse or to check is
// corrupt, and a corrupt ledger is unknown history: it is never trusted in
// part.
const (
	ledgerHeader  = "sessionlock ledger v2"
	ledgerVersion = 2

	// maxLedgerBytes bounds what a reader accepts; an encoded ledger stays
	// well below it because every list and string in it is bounded.
	maxLedgerBytes = 64 << 10
	// tenureHistory is how many closed tenures the ledger remembers, so a
	// fence can name the co-tenants of a window of up to this many tenures.
	tenureHistory = 32
	// breakHistory is how many recent breaks the ledger remembers in full.
	// The highest break generation is kept separately and never forgotten.
	breakHistory = 8
	// maxNameBytes bounds owner and host names stored in the ledger.
	maxNameBytes = 64
	// maxDetailBytes bounds the free-text detail of a break.
	maxDetailBytes = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fpRecord is a Fingerprint as stored in the ledger.
type fpRecord struct {
	Exists bool
	Dev    uint64
	Ino    uint64
	Size   int64
	Mtime  int64
	Ctime  int64
	SHA256 string
}

func recordOf(fp Fingerprint) *fpRecord {
	r := &fpRecord{Exists: fp.Exists, Dev: fp.Device, Ino: fp.Inode, Size: fp.Size, Mtime: fp.ModTime, Ctime: fp.ChangeTime}
	if fp.HasDigest {
		r.SHA256 = hex.EncodeToString(fp.Digest[:])
	}
	return r
}

func (r *fpRecord) fingerprint() (Fingerprint, error) {
	if r == nil {
		return Fingerprint{}, errors.New("missing fingerprint")
	}
	fp := Fingerprint{Exists: r.Exists, Device: r.Dev, Inode: r.Ino, Size: r.Size, ModTime: r.Mtime, ChangeTime: r.Ctime}
	if r.SHA256 != "" {
		b, err := hex.DecodeString(r.SHA256)
		if err != nil || len(b) != len(fp.Digest) {
			return Fingerprint{}, errors.New("bad digest")
		}
		copy(fp.Digest[:], b)
		fp.HasDigest = true
	}
	return fp, nil
}

// tenureRecord is one tenure: open (Released == 0) or closed.
type tenureRecord struct {
	Gen       uint64
	Owner     string
	PID       int
	Host      string
	ProcStart int64
	Acquired  int64
	Released  int64
	SizeIn    int64
	SizeOut   int64
	Wrote     bool
	Died      bool
	// Mode is the fingerprint mode of the tenure: "stat" or "content".
	Mode string
	// AcquireFP is kept only while the tenure is open: it is the state the
	// holder found, and the reference if the holder dies before release.
	AcquireFP *fpRecord
}

func (t *tenureRecord) holder() Holder {
	h := Holder{Owner: t.Owner, PID: t.PID, Host: t.Host, Since: time.Unix(0, t.Acquired)}
	if t.ProcStart != 0 {
		h.ProcessStart = time.Unix(0, t.ProcStart)
	}
	return h
}

// breakRecord is a point where the chain of tenures broke.
type breakRecord struct {
	// Gen is the tenure that found the break; the chain broke before it.
	Gen    uint64
	Cause  string
	Change string
	Before *fpRecord
	After  *fpRecord
	Dead   *tenureRecord
	At     int64
	Detail string
	// Append describes a change that added bytes at the end.
	Append *appendRecord
}

// appendRecord is an appendInfo as stored in the ledger.
type appendRecord struct {
	From           int64
	To             int64
	PrefixVerified bool
	CompleteLines  bool
}

func (a appendInfo) record() *appendRecord {
	if a.to <= a.from {
		return nil
	}
	return &appendRecord{From: a.from, To: a.to, PrefixVerified: a.prefixVerified, CompleteLines: a.completeLines}
}

// ledgerState is the decoded ledger.
type ledgerState struct {
	Version int
	// ID names this ledger's lineage: a random value chosen when a ledger
	// starts from nothing (first use, or after a loss). A fence that finds
	// another ID than the one it released under knows the history it
	// relied on is gone, whatever the generations say.
	ID string
	// Generation is the highest generation ever opened.
	Generation uint64
	// Open is the tenure currently open, or nil.
	Open *tenureRecord
	// LastRelease is the session file's fingerprint at the last release,
	// made by tenure LastReleaseGen.
	LastRelease    *fpRecord
	LastReleaseGen uint64
	// BreakGen is the highest generation at which a break was recorded.
	BreakGen uint64
	Breaks   []breakRecord
	// Tenures holds the closed tenures, oldest first, in encoded form: a
	// tenure is parsed only when someone asks about it, and an unchanged
	// history is written back as it was read.
	Tenures []tenureLine

	// lastClosed is the tenure that end closed, kept so that the holder
	// line need not parse it back; not part of the encoding.
	lastClosed *tenureRecord
	// breakLines caches the encoded break records while Breaks is
	// unchanged (addBreak clears it); breaks are rare, and encoding them
	// again on every ledger write would be most of the encoder's work.
	breakLines []byte
}

// tenureLine is one closed tenure in the ledger's history.
type tenureLine struct {
	Gen  uint64
	text string // the record as encoded (see appendTenure)
}

func newTenureLine(t *tenureRecord) tenureLine {
	// A tenure line is about 100 bytes; encoding it on the stack leaves
	// one allocation, the string.
	var buf [192]byte
	return tenureLine{Gen: t.Gen, text: string(appendTenure(buf[:0], t))}
}

// record parses the tenure. A record that does not parse (possible only in
// a ledger crafted to pass its checksum) gives the fields that did, which
// matters for diagnostics alone: verdicts never depend on it.
func (l tenureLine) record() tenureRecord {
	f := fields{s: l.text}
	t := *f.tenure()
	t.Gen = l.Gen
	return t
}

// encodeLedger renders s in the lock file format.
func encodeLedger(s *ledgerState) ([]byte, error) {
	return appendLedger(make([]byte, 0, 4096), s), nil
}

// appendLedger appends s in the lock file format to b.
func appendLedger(b []byte, s *ledgerState) []byte {
	s.Version = ledgerVersion
	b = append(b, ledgerHeader...)
	b = append(b, "\nholder: "...)
	b = s.appendSummary(b)
	b = append(b, '\n')
	start := len(b)
	b = appendRecords(b, s)
	sum := crc32.Checksum(b[start:], castagnoli)
	b = append(b, "crc32c: "...)
	b = appendHex32(b, sum)
	return append(b, '\n')
}

// ledgerBuffers recycles the buffers that ledgers are read into and
// encoded in, two per tenure otherwise. A pool keeps nothing across garbage
// collections, so idle sessions leave no residue.
var ledgerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

func appendHex32(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}

// appendSummary renders the holder line, for example
// `"cron" pid 4242 on host "gw1" since 2026-12-03T15:58:19.5Z (generation 42)`
// or `none; generation 42 released by "cron" pid 4242 at ...`. It is on the
// path of every tenure, so it appends instead of formatting.
func (s *ledgerState) appendSummary(b []byte) []byte {
	if t := s.Open; t != nil {
		b = appendHolder(b, t.Owner, t.PID, t.Host, t.Acquired)
		b = append(b, " (generation "...)
		b = strconv.AppendUint(b, t.Gen, 10)
		return append(b, ')')
	}
	b = append(b, "none; generation "...)
	if n := len(s.Tenures); n > 0 {
		t := s.lastClosed
		if t == nil || t.Gen != s.Tenures[n-1].Gen {
			r := s.Tenures[n-1].record()
			t = &r
		}
		b = strconv.AppendUint(b, t.Gen, 10)
		b = append(b, " released by "...)
		b = strconv.AppendQuote(b, t.Owner)
		b = append(b, " pid "...)
		b = strconv.AppendInt(b, int64(t.PID), 10)
		b = append(b, " at "...)
		return time.Unix(0, t.Released).UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return strconv.AppendUint(b, s.Generation, 10)
}

// appendHolder renders a holder as Holder.String does.
func appendHolder(b []byte, owner string, pid int, host string, since int64) []byte {
	if owner == "" {
		owner = "(no owner)"
	}
	b = strconv.AppendQuote(b, owner)
	b = append(b, " pid "...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, " on host "...)
	b = strconv.AppendQuote(b, host)
	if since != 0 {
		b = append(b, " since "...)
		b = time.Unix(0, since).UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return b
}

// corruptLedgerError says why a ledger could not be trusted.
type corruptLedgerError struct{ why string }

func (e *corruptLedgerError) Error() string { return "corrupt ledger: " + e.why }

func corrupt(format string, args ...any) error {
	return &corruptLedgerError{why: fmt.Sprintf(format, args...)}
}

// errEmptyLedger marks a lock file with no ledger at all: first use, or a
// lock file created by a tool that does not keep one.
var errEmptyLedger = errors.New("no ledger in the lock file")

// decodeLedger parses and verifies a ledger. It never panics; any defect is
// reported as an error and the caller treats the history as unknown.
func decodeLedger(raw []byte) (*ledgerState, error) {
	if len(bytes.TrimSpace(bytes.Trim(raw, "\x00"))) == 0 {
		return nil, errEmptyLedger
	}
	if len(raw) > maxLedgerBytes {
		return nil, corrupt("%d bytes, more than the %d a ledger may use", len(raw), maxLedgerBytes)
	}
	// Only the records are kept (closed tenures stay as text), so only
	// they are copied into a string, after the checksum has passed.
	// The checksum line is the first line that starts with "crc32c: ";
	// records never contain a raw newline, but a quoted detail may
	// contain the marker itself.
	end := len(raw)
	crcAt := bytes.Index(raw, []byte("\ncrc32c: ")) + 1 // 0 when missing
	if crcAt > 0 {
		end = crcAt
	}
	text := string(raw[:min(len(raw), end+len("crc32c: ")+9)])
	header, rest, ok := strings.Cut(text, "\n")
	if !ok {
		return nil, corrupt("truncated after the header")
	}
	if header != ledgerHeader {
		if strings.HasPrefix(header, "sessionlock ledger v") {
			return nil, corrupt("unsupported format %q", header)
		}
		return nil, corrupt("no ledger header")
	}

	// Skip the holder line, then checksum everything up to the crc line.
	holder, body, ok := strings.Cut(rest, "\n")
	if !ok || !strings.HasPrefix(holder, "holder: ") {
		return nil, corrupt("no holder line")
	}
	i := crcAt - (len(text) - len(body)) // the crc line's offset in body
	if crcAt == 0 || i < 0 {
		return nil, corrupt("truncated: no checksum line")
	}
	records := body[:i]
	sum, tail, ok := strings.Cut(body[i+len("crc32c: "):], "\n")
	if !ok {
		return nil, corrupt("truncated: no complete checksum line")
	}
	_ = tail // bytes after the checksum line are ignored
	want, err := strconv.ParseUint(sum, 16, 32)
	if err != nil || len(sum) != 8 {
		return nil, corrupt("bad checksum field %.20q", sum)
	}
	start := len(text) - len(body)
	if got := crc32.Checksum(raw[start:start+len(records)], castagnoli); uint32(want) != got {
		return nil, corrupt("checksum mismatch: recorded %08x, computed %08x", want, got)
	}

	s, err := parseRecords(records)
	if err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// validate checks the invariants a well-formed ledger keeps, so that a
// ledger whose checksum happens to match garbage is still refused.
func (s *ledgerState) validate() error {
	if s.Version != ledgerVersion {
		return corrupt("data version %d", s.Version)
	}
	if s.Generation == 0 {
		return corrupt("generation 0")
	}
	if len(s.Tenures) > tenureHistory || len(s.Breaks) > breakHistory {
		return corrupt("history longer than allowed")
	}
	if s.Open != nil && (s.Open.Gen != s.Generation || s.Open.AcquireFP == nil) {
		return corrupt("open tenure %d does not match generation %d", s.Open.Gen, s.Generation)
	}
	if s.Open == nil && s.LastRelease == nil {
		return corrupt("neither an open tenure nor a last release")
	}
	if s.LastReleaseGen > s.Generation || s.BreakGen > s.Generation {
		return corrupt("generations beyond the current one")
	}
	for _, fr := range []*fpRecord{s.LastRelease, openFP(s.Open)} {
		if fr != nil {
			if _, err := fr.fingerprint(); err != nil {
				return corrupt("fingerprint: %v", err)
			}
		}
	}
	prev := uint64(0)
	for _, t := range s.Tenures {
		if t.Gen <= prev || t.Gen > s.Generation {
			return corrupt("tenure history out of order")
		}
		prev = t.Gen
	}
	for _, b := range s.Breaks {
		if b.Gen > s.BreakGen || parseCause(b.Cause) == 0 {
			return corrupt("bad break record")
		}
	}
	return nil
}

func openFP(t *tenureRecord) *fpRecord {
	if t == nil {
		return nil
	}
	return t.AcquireFP
}

// ledgerIDLen is the length of a ledger ID in hexadecimal digits.
const ledgerIDLen = 16

func newLedgerID() string {
	var b [ledgerIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; fall back to
		// the clock, which still differs from any earlier ledger's ID.
		return fmt.Sprintf("%016x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

func validLedgerID(id string) bool {
	if len(id) != ledgerIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// clip shortens s to at most n bytes on a rune boundary and replaces
// invalid UTF-8, so names stay bounded and printable in the ledger.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
