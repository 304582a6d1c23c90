package cases

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"
)

// The binary forms of a book (a snapshot) and of an event (a journal
// record): varints, strings as their length and bytes. A snapshot ends
// with the CRC-32 of what precedes it; each journal record carries its
// own, so a record torn by a crash is found and what follows it dropped.

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is a snapshot or record that does not decode.
var errCorrupt = errors.New("corrupt")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime is a time as unix nanoseconds, 0 for the zero time.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// reader reads the forms appended above; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time() time.Time {
	if n := r.varint(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

// count reads a length, refusing one larger than the bytes left could
// hold (each item takes at least min bytes): a corrupt length must not
// allocate gigabytes.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errCorrupt
	}
	return int(n)
}

// AppendEvent appends an event's binary form.
func AppendEvent(b []byte, e Event) []byte {
	b = appendString(b, e.Case)
	b = appendString(b, e.Status)
	b = appendTime(b, e.Time)
	b = appendTime(b, e.Due)
	b = appendTime(b, e.Opened)
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = appendString(b, t.Key)
		b = appendString(b, t.Value)
	}
	return b
}

// DecodeEvent reads an event AppendEvent wrote.
func DecodeEvent(b []byte) (Event, error) {
	r := reader{b: b}
	e := Event{Case: r.string(), Status: r.string(), Time: r.time(), Due: r.time(), Opened: r.time()}
	if n := r.count(2); n > 0 {
		e.Tags = make([]Tag, n)
		for i := range e.Tags {
			e.Tags[i] = Tag{Key: r.string(), Value: r.string()}
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errCorrupt
	}
	if r.err != nil {
		return Event{}, fmt.Errorf("a case event: %w", r.err)
	}
	return e, nil
}

// AppendSnapshot appends the book's binary form: its clock, and every
// case it holds, open and remembered closed, with its status, tags,
// times and reopenings, followed by a CRC-32 of the whole.
func (b *Book) AppendSnapshot(out []byte) []byte {
	start := len(out)
	out = slices.Grow(out, 64*len(b.cases)) // about a case's size: no copying as it grows
	out = binary.AppendVarint(out, b.now)
	sets := make(map[*tagSet]uint64, len(b.tagSets))
	out = binary.AppendUvarint(out, uint64(len(b.tagSets)))
	for _, s := range b.tagSets {
		sets[s] = uint64(len(sets))
		out = binary.AppendUvarint(out, uint64(len(s.tags)))
		for _, t := range s.tags {
			out = appendString(out, t.Key)
			out = appendString(out, t.Value)
		}
	}
	out = binary.AppendUvarint(out, uint64(len(b.cases)))
	for _, c := range b.cases {
		out = appendString(out, c.ID)
		out = appendString(out, c.Status)
		out = binary.AppendUvarint(out, sets[c.tags])
		out = binary.AppendVarint(out, c.Opened)
		out = binary.AppendVarint(out, c.Due)
		out = binary.AppendVarint(out, c.Updated)
		out = binary.AppendVarint(out, c.ClosedAt)
		out = binary.AppendUvarint(out, uint64(c.Reopens))
		out = binary.AppendVarint(out, c.prevClosed)
		out = binary.AppendVarint(out, c.prevTook)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[start:], crcTable))
}

// Restore returns the book a snapshot holds, under the given rules (those
// it was taken under: the caller checks) and horizons. Its clock is the
// snapshot's; Tick moves it on.
func Restore(snapshot []byte, rules Rules, horizons []time.Duration) (*Book, error) {
	if len(snapshot) < 4 {
		return nil, fmt.Errorf("a case book snapshot: %w", errCorrupt)
	}
	body, sum := snapshot[:len(snapshot)-4], binary.LittleEndian.Uint32(snapshot[len(snapshot)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("a case book snapshot: %w (checksum)", errCorrupt)
	}
	r := reader{b: body}
	now := r.varint()
	b := New(rules, horizons, time.Unix(0, now))
	sets := make([]*tagSet, r.count(1))
	for i := range sets {
		tags := make([]Tag, r.count(2))
		for j := range tags {
			tags[j] = Tag{Key: r.string(), Value: r.string()}
		}
		sets[i] = b.tagSet(tags)
	}
	n := r.count(8)
	for range n {
		c := &Case{ID: r.string(), Status: b.intern(r.string())}
		set := r.uvarint()
		c.Opened, c.Due, c.Updated, c.ClosedAt = r.varint(), r.varint(), r.varint(), r.varint()
		c.Reopens = int32(r.uvarint())
		c.prevClosed, c.prevTook = r.varint(), r.varint()
		if r.err != nil || set >= uint64(len(sets)) || c.ID == "" || b.cases[c.ID] != nil {
			return nil, fmt.Errorf("a case book snapshot: %w", errCorrupt)
		}
		c.tags = sets[set]
		b.cases[c.ID] = c
		if c.Open() {
			b.enter(c)
		} else {
			b.closedQ.ReplaceOrInsert(c)
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("a case book snapshot: %w", errCorrupt)
	}
	return b, nil
}
