package cases

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// A Store keeps a book in a directory, so that its cases survive a crash
// and a restart: snapshots of the whole book, and a journal of the events
// applied since the newest. Journal k holds the events applied after
// snapshot k-1 was taken; snapshot k holds the book after journal k. A
// restart reads the newest whole snapshot and replays the journals after
// it, so a crash while a snapshot is written loses nothing: the older
// snapshot and its journals are deleted only once the new one is on disk.
//
// Journal records are written, not buffered, as events are applied, so a
// killed process loses none; they are synced to disk by Sync (every
// second), so a power cut loses at most what was applied since.
//
// Every file begins with the feed's case definition (key): a book kept
// under other statuses or time limits is not restored, and its files are
// removed.
//
// A Store is not safe for concurrent use, except Sync: its owner
// serialises Record, Snapshot and Close with the book's other uses.
type Store struct {
	dir string
	key []byte

	mu      sync.Mutex // the journal file, against Sync
	journal *os.File
	seq     uint64 // the journal being written
	buf     []byte
	err     error // the first write that failed: the store no longer restores
	since   int   // events recorded since the newest snapshot
}

// Restored is what OpenStore found.
type Restored struct {
	// Whole is true when the book was restored complete: from a snapshot
	// and the journals after it, or from every journal since the first.
	Whole bool
	// Snapshot is the snapshot's number (0: none), Events the journal
	// events replayed, Torn the bytes of a torn journal tail dropped.
	Snapshot uint64
	Events   int
	Torn     int
	// Newest is the newest event time the book holds.
	Newest time.Time
	// Discarded says why files were found but not used, or "".
	Discarded string
}

const (
	snapshotMagic = "cityscreen case book 1\n"
	journalMagic  = "cityscreen case journal 1\n"
)

// OpenStore opens the store in dir (created if missing) for a feed whose
// case definition is key, and returns the book it holds (empty when it
// holds none, or none it can restore whole), with its clock at now.
func OpenStore(dir string, key []byte, rules Rules, horizons []time.Duration, now time.Time) (*Store, *Book, Restored, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, Restored{}, fmt.Errorf("case store: %w", err)
	}
	s := &Store{dir: dir, key: slices.Clone(key)}
	b, r, err := s.restore(rules, horizons)
	if err != nil {
		return nil, nil, Restored{}, err
	}
	if !r.Whole {
		b = New(rules, horizons, now)
		if err := s.removeAll(); err != nil {
			return nil, nil, Restored{}, err
		}
		s.seq = 0 // a book from nothing: journal 1 is its whole history
	}
	b.Tick(now)
	s.since = r.Events // replayed: the next snapshot spares the next start them
	if err := s.openJournal(s.seq + 1); err != nil {
		return nil, nil, Restored{}, err
	}
	return s, b, r, nil
}

// files are the store's snapshots and journals by number.
func (s *Store) files() (snaps, journals []uint64, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("case store: %w", err)
	}
	for _, e := range ents {
		name, num, ok := strings.Cut(e.Name(), "-")
		n, perr := strconv.ParseUint(num, 10, 64)
		if !ok || perr != nil {
			continue
		}
		switch name {
		case "book":
			snaps = append(snaps, n)
		case "journal":
			journals = append(journals, n)
		}
	}
	slices.Sort(snaps)
	slices.Sort(journals)
	return snaps, journals, nil
}

func (s *Store) path(kind string, n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%020d", kind, n))
}

// restore reads the newest whole snapshot and the journals after it.
func (s *Store) restore(rules Rules, horizons []time.Duration) (*Book, Restored, error) {
	snaps, journals, err := s.files()
	if err != nil {
		return nil, Restored{}, err
	}
	if len(journals) > 0 {
		s.seq = journals[len(journals)-1]
	}
	if len(snaps) == 0 && len(journals) == 0 {
		return nil, Restored{}, nil
	}
	var r Restored
	var b *Book
	var base uint64
	for i := len(snaps) - 1; i >= 0 && b == nil; i-- {
		data, err := os.ReadFile(s.path("book", snaps[i]))
		if err != nil {
			return nil, Restored{}, fmt.Errorf("case store: %w", err)
		}
		body, ok := bytes.CutPrefix(data, []byte(snapshotMagic))
		var key []byte
		if ok {
			key, body, ok = cutBytes(body)
		}
		switch {
		case !ok:
			r.Discarded = fmt.Sprintf("snapshot %d is not a case book", snaps[i])
		case !bytes.Equal(key, s.key):
			return nil, Restored{Discarded: "the feed's case definition changed"}, nil
		default:
			if b, err = Restore(body, rules, horizons); err != nil {
				r.Discarded = fmt.Sprintf("snapshot %d: %v", snaps[i], err)
			} else {
				base = snaps[i]
			}
		}
	}
	s.seq = max(s.seq, base)
	if b == nil {
		b = New(rules, horizons, time.Unix(0, 0))
	}
	r.Snapshot = base
	// The journals after the snapshot, each one, in order.
	want := base + 1
	for _, n := range journals {
		if n <= base {
			continue
		}
		if n != want {
			r.Discarded = fmt.Sprintf("journal %d is missing", want)
			return nil, r, nil
		}
		want++
		events, torn, err := s.replay(n, b)
		if err != nil {
			r.Discarded = err.Error()
			return nil, r, nil
		}
		r.Events += events
		r.Torn += torn
	}
	if base == 0 && (len(journals) == 0 || journals[0] != 1) {
		r.Discarded = "neither a snapshot nor the first journal"
		return nil, r, nil
	}
	r.Whole = true
	for _, c := range b.cases {
		if c.Updated > r.Newest.UnixNano() || r.Newest.IsZero() {
			r.Newest = time.Unix(0, c.Updated).UTC()
		}
	}
	return b, r, nil
}

// replay applies journal n's events to b; a torn record ends it.
func (s *Store) replay(n uint64, b *Book) (events, torn int, err error) {
	data, err := os.ReadFile(s.path("journal", n))
	if err != nil {
		return 0, 0, fmt.Errorf("case store: %w", err)
	}
	body, ok := bytes.CutPrefix(data, []byte(journalMagic))
	var key []byte
	if ok {
		key, body, ok = cutBytes(body)
	}
	if !ok || !bytes.Equal(key, s.key) {
		return 0, 0, fmt.Errorf("journal %d does not belong to this feed's definition", n)
	}
	for len(body) > 0 {
		size, k := binary.Uvarint(body)
		if k <= 0 || uint64(len(body)-k) < 4+size {
			break
		}
		sum := binary.LittleEndian.Uint32(body[k:])
		rec := body[k+4 : k+4+int(size)]
		if crc32.Checksum(rec, crcTable) != sum {
			break
		}
		e, err := DecodeEvent(rec)
		if err != nil {
			break
		}
		b.Apply(e) // as it was applied: refusals were not recorded
		events++
		body = body[k+4+int(size):]
	}
	return events, len(body), nil
}

// cutBytes cuts a length-prefixed byte string off b.
func cutBytes(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

func (s *Store) header(magic string) []byte {
	b := append([]byte(magic), binary.AppendUvarint(nil, uint64(len(s.key)))...)
	return append(b, s.key...)
}

// openJournal starts journal n.
func (s *Store) openJournal(n uint64) error {
	f, err := os.OpenFile(s.path("journal", n), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("case store: %w", err)
	}
	if _, err := f.Write(s.header(journalMagic)); err != nil {
		f.Close()
		return fmt.Errorf("case store: %w", err)
	}
	s.mu.Lock()
	s.journal, s.seq = f, n
	s.mu.Unlock()
	return nil
}

// Record writes events the book applied to the journal, at once (one
// write). After a failed write the store keeps nothing more, and removes
// its files, so that a restart does not restore a book with events
// missing; the error is returned once.
func (s *Store) Record(events []Event) error {
	if s.err != nil || len(events) == 0 {
		return nil
	}
	s.buf = s.buf[:0]
	var rec []byte
	for _, e := range events {
		rec = AppendEvent(rec[:0], e)
		s.buf = binary.AppendUvarint(s.buf, uint64(len(rec)))
		s.buf = binary.LittleEndian.AppendUint32(s.buf, crc32.Checksum(rec, crcTable))
		s.buf = append(s.buf, rec...)
	}
	s.since += len(events)
	if _, err := s.journal.Write(s.buf); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *Store) fail(err error) error {
	s.err = fmt.Errorf("case store: %w", err)
	s.removeAll()
	return s.err
}

// Since is how many events were recorded since the newest snapshot.
func (s *Store) Since() int { return s.since }

// Snapshot takes a snapshot of b, which the store holds, and starts a new
// journal. It encodes the book (the caller holds the book meanwhile) and
// returns the write, which the caller runs without holding the book: it
// writes the snapshot durably, then removes the older files.
func (s *Store) Snapshot(b *Book) (write func() error) {
	if s.err != nil {
		return func() error { return nil }
	}
	data := b.AppendSnapshot(s.header(snapshotMagic))
	n := s.seq
	s.mu.Lock()
	old := s.journal
	s.mu.Unlock()
	if err := s.openJournal(n + 1); err != nil {
		err = s.fail(err)
		return func() error { return err }
	}
	old.Close()
	s.since = 0
	return func() error {
		if err := atomicfile.Write(s.path("book", n), data); err != nil {
			return fmt.Errorf("case store: %w", err)
		}
		snaps, journals, err := s.files()
		if err != nil {
			return err
		}
		for _, k := range snaps {
			if k < n {
				os.Remove(s.path("book", k))
			}
		}
		for _, k := range journals {
			if k <= n {
				os.Remove(s.path("journal", k))
			}
		}
		return nil
	}
}

// Sync writes the journal to disk. Safe to call while the owner records.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("case store: %w", err)
	}
	return nil
}

// Close closes the journal. A Store closed is not used again.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal == nil {
		return nil
	}
	err := s.journal.Sync()
	if cerr := s.journal.Close(); err == nil {
		err = cerr
	}
	s.journal = nil
	return err
}

// Remove closes the store and removes its files: the feed is gone, or its
// definition changed.
func (s *Store) Remove() error {
	s.Close()
	return s.removeAll()
}

func (s *Store) removeAll() error {
	snaps, journals, err := s.files()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, k := range snaps {
		os.Remove(s.path("book", k))
	}
	for _, k := range journals {
		os.Remove(s.path("journal", k))
	}
	return nil
}
