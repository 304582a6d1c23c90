// Package wal is cityscreen's write-ahead log: the durable buffer between
// ingest and storage.
//
// Append queues a record and calls its done function once the record is on
// disk: a single goroutine writes every queued record and fsyncs once per
// round (group commit), so many appends share one fsync. Only then does
// ingest acknowledge the MQTT message. Records live in numbered segment
// files; each record carries its length, a CRC-32C checksum and the time it
// was appended. Open scans every segment and cuts a torn tail (a record a
// crash left half-written, which was never acknowledged).
//
// A Reader walks the records in order, waiting for new ones, for the
// forwarder that writes them to InfluxDB; Trim deletes the segments it has
// finished with. When the segments reach MaxBytes, appends wait for space:
// nothing is acknowledged, so the broker keeps the messages. All methods
// are safe for concurrent use.
package wal

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const headerSize = 16 // length u32, crc u32, append time i64

// MaxRecord bounds one record; a larger length in a header means damage.
const MaxRecord = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// CommitIdle is how long a commit waits for one more record to join it
// before it goes ahead (see Options.CommitInterval).
const CommitIdle = time.Millisecond

// ErrClosed is returned by appends after Close.
var ErrClosed = errors.New("wal: closed")

// Options configure a Log. Dir is required.
type Options struct {
	Dir string
	// SegmentBytes starts a new segment once the active one is this large;
	// 0 means 64 MiB.
	SegmentBytes int64
	// MaxBytes is the most the segments may hold; appends wait beyond it.
	// 0 means 1 GiB.
	MaxBytes int64
	// NoSync skips fsync: faster, and a crash of the machine (not just of
	// the process) can lose acknowledged records. For measurements only.
	NoSync bool
	// CommitInterval is the shortest time between two commits (a write and
	// an fsync). A record that arrives sooner waits, gathering others,
	// until the interval has passed or until no other record has come for
	// CommitIdle, whichever is first: under a steady stream fsyncs are
	// fewer and larger, at the cost of at most this much delay, and when
	// the appenders wait for the last commit (a broker's window of
	// unacknowledged messages is full) the commit does not wait for
	// records that cannot come. A record after a quiet spell is committed
	// at once. 0 commits as soon as the last commit ends.
	CommitInterval time.Duration
	// OnCommit, if set, is told of each commit: how many records it made
	// durable and how long the write and fsync took. It runs on the log's
	// goroutine and must be quick.
	OnCommit func(records int, took time.Duration)
}

// Position is a place in the log: a segment and a byte offset in it.
type Position struct {
	Seg uint64
	Off int64
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	return p.Seg < q.Seg || (p.Seg == q.Seg && p.Off < q.Off)
}

// Log is an open write-ahead log.
type Log struct {
	opts Options
	log  *slog.Logger
	reqs chan request
	done chan struct{} // closed when the writer goroutine has ended

	sendMu  sync.RWMutex // held to send on reqs; Close takes it to close reqs
	sending bool         // reqs is open

	mu        sync.Mutex
	segs      []segment     // oldest first; the last is active
	committed Position      // end of the last durable record
	changed   chan struct{} // closed and replaced at each commit or trim
	closed    bool
	full      bool
	lastErr   error
	torn      int64 // bytes cut at Open
}

type segment struct {
	num  uint64
	size int64
}

type request struct {
	data []byte
	at   time.Time
	done func(error)
}

// The defaults of Options, which the configuration's wal settings share.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultMaxBytes     = 1 << 30
)

// Open opens (or creates) the log in opts.Dir, cutting any torn tail.
func Open(opts Options, log *slog.Logger) (*Log, error) {
	opts.SegmentBytes = cmp.Or(opts.SegmentBytes, DefaultSegmentBytes)
	opts.MaxBytes = cmp.Or(opts.MaxBytes, DefaultMaxBytes)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	l := &Log{opts: opts, log: log.With("component", "wal", "dir", opts.Dir), reqs: make(chan request, 4096),
		done: make(chan struct{}), changed: make(chan struct{}), sending: true}
	nums, err := l.list()
	if err != nil {
		return nil, err
	}
	for _, n := range nums {
		size, cut, err := l.recover(n)
		if err != nil {
			return nil, err
		}
		l.torn += cut
		l.segs = append(l.segs, segment{num: n, size: size})
	}
	if len(l.segs) == 0 {
		l.segs = append(l.segs, segment{num: 1})
	}
	active := l.segs[len(l.segs)-1]
	l.committed = Position{active.num, active.size}
	f, err := os.OpenFile(l.path(active.num), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	if err := syncDir(opts.Dir); err != nil {
		f.Close()
		return nil, err
	}
	go l.write(f)
	return l, nil
}

func (l *Log) path(num uint64) string {
	return filepath.Join(l.opts.Dir, fmt.Sprintf("%020d.wal", num))
}

func (l *Log) list() ([]uint64, error) {
	entries, err := os.ReadDir(l.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var nums []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

// recover scans a segment and truncates it after its last whole record.
func (l *Log) recover(num uint64) (size, cut int64, err error) {
	path := l.path(num)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("wal: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	for {
		n, _, err := readRecord(r, nil)
		if err != nil {
			break
		}
		off += n
	}
	if cut = info.Size() - off; cut > 0 {
		l.log.Warn("cutting a torn or damaged tail: records there were never acknowledged", "segment", filepath.Base(path), "offset", off, "bytes", cut)
		if err := f.Truncate(off); err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
	}
	return off, cut, nil
}

// readRecord reads one record into buf (grown as needed) and returns its
// size on disk, its data and append time. Any damage is an error.
func readRecord(r io.Reader, buf []byte) (int64, Record, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, Record{}, err
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	sum := binary.LittleEndian.Uint32(h[4:8])
	if n > MaxRecord {
		return 0, Record{}, fmt.Errorf("record length %d is impossible", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, Record{}, err
	}
	crc := crc32.Update(crc32.Checksum(h[8:16], crcTable), crcTable, buf)
	if crc != sum {
		return 0, Record{}, errors.New("checksum mismatch")
	}
	at := time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:16])))
	return int64(headerSize) + int64(n), Record{Data: buf, Time: at}, nil
}

func appendRecord(dst []byte, data []byte, at time.Time) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(at.UnixNano()))
	crc := crc32.Update(crc32.Checksum(h[8:16], crcTable), crcTable, data)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	return append(append(dst, h[:]...), data...)
}

// Append queues data and calls done (from the log's goroutine, so it must
// be quick) once the data is durable, or with the error that kept it from
// being so. Append blocks only while the log's queue is full.
func (l *Log) Append(data []byte, done func(error)) {
	if len(data) > MaxRecord {
		done(fmt.Errorf("wal: a record of %d bytes is over the limit of %d", len(data), MaxRecord))
		return
	}
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.sending {
		l.reqs <- request{data: data, at: time.Now(), done: done}
		return
	}
	done(ErrClosed)
}

// write is the log's one writer: it takes every queued request, writes
// them in one go, fsyncs once, then reports to each.
func (l *Log) write(f *os.File) {
	defer close(l.done)
	var buf []byte
	var batch []request
	var last time.Time // the last commit's start
	for {
		req, ok := <-l.reqs
		if !ok {
			f.Close()
			return
		}
		batch = append(batch[:0], req)
		// A round stays small beside the limit, so that it always fits once
		// the forwarder has trimmed all but the active segment.
		bytes, most := int64(len(req.data)+headerSize), l.opts.MaxBytes/4
		// gather takes what has arrived, and tells whether anything had.
		gather := func() (took bool) {
			for len(batch) < 8192 && bytes < most {
				select {
				case req, ok := <-l.reqs:
					if !ok {
						return took
					}
					batch = append(batch, req)
					bytes += int64(len(req.data) + headerSize)
					took = true
				default:
					return took
				}
			}
			return took
		}
		// Until the interval since the last commit has passed, what
		// arrives joins this commit, as long as something does.
		for until := last.Add(l.opts.CommitInterval); ; {
			wait := time.Until(until)
			if wait <= 0 {
				break
			}
			time.Sleep(min(wait, CommitIdle))
			if !gather() || len(batch) >= 8192 || bytes >= most {
				break
			}
		}
		gather()
		last = time.Now()
		buf = buf[:0]
		for _, r := range batch {
			buf = appendRecord(buf, r.data, r.at)
		}
		l.waitForSpace(int64(len(buf)))
		var err error
		began := time.Now()
		f, err = l.commit(f, buf)
		if l.opts.OnCommit != nil {
			l.opts.OnCommit(len(batch), time.Since(began))
		}
		for _, r := range batch {
			r.done(err)
		}
		if f == nil { // the active segment could not be reopened: nothing more can be durable
			for r := range l.reqs {
				r.done(err)
			}
			return
		}
	}
}

// waitForSpace blocks while the segments are at their limit, until the
// forwarder trims or the log closes.
func (l *Log) waitForSpace(need int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && l.sizeLocked()+need > l.opts.MaxBytes && l.sizeLocked() > 0 {
		if !l.full {
			l.full = true
			l.log.Error("the write-ahead log is full: no longer acknowledging messages; the broker keeps them until storage catches up", "max_bytes", l.opts.MaxBytes)
		}
		ch := l.changed
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
	}
	if l.full {
		l.full = false
		l.log.Info("the write-ahead log has room again: acknowledging messages")
	}
}

func (l *Log) commit(f *os.File, buf []byte) (*os.File, error) {
	_, err := f.Write(buf)
	if err == nil && !l.opts.NoSync {
		err = f.Sync()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastErr = err
	if err != nil {
		// The segment may now hold a partial write: start a new one, so
		// that what follows is readable, and let Open cut the damage.
		l.log.Error("write-ahead log write failed", "err", err)
		return l.rotateLocked(f)
	}
	active := &l.segs[len(l.segs)-1]
	active.size += int64(len(buf))
	l.committed = Position{active.num, active.size}
	l.broadcastLocked()
	if active.size >= l.opts.SegmentBytes {
		return l.rotateLocked(f)
	}
	return f, nil
}

// rotateLocked closes the active segment and opens the next.
func (l *Log) rotateLocked(f *os.File) (*os.File, error) {
	f.Close()
	next := l.segs[len(l.segs)-1].num + 1
	nf, err := os.OpenFile(l.path(next), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.lastErr = err
		return nil, fmt.Errorf("wal: %w", err)
	}
	if err := syncDir(l.opts.Dir); err != nil {
		l.lastErr = err
	}
	l.segs = append(l.segs, segment{num: next})
	l.committed = Position{next, 0}
	l.broadcastLocked()
	return nf, nil
}

func (l *Log) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Log) sizeLocked() int64 {
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Trim deletes every segment wholly before pos: the forwarder has written
// all of it.
func (l *Log) Trim(pos Position) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	// A segment is done when pos is past it, or at the end of it and it is
	// no longer the active one.
	for len(l.segs) > 1 && (l.segs[0].num < pos.Seg || l.segs[0].num == pos.Seg && pos.Off >= l.segs[0].size) {
		if e := os.Remove(l.path(l.segs[0].num)); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = e
			break
		}
		l.segs = l.segs[1:]
	}
	l.broadcastLocked()
	return err
}

// DropOldest deletes the oldest segment unless it is the active one, and
// returns how many bytes went. For logs whose old records may be given up
// (the quarantine), never for the log of readings.
func (l *Log) DropOldest() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) < 2 {
		return 0
	}
	if err := os.Remove(l.path(l.segs[0].num)); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.log.Error("cannot delete a segment", "err", err)
		return 0
	}
	n := l.segs[0].size
	l.segs = l.segs[1:]
	l.broadcastLocked()
	return n
}

// Stats describe the log for readiness and metrics.
type Stats struct {
	Bytes     int64
	MaxBytes  int64
	Segments  int
	Full      bool
	Committed Position
	TornBytes int64 // cut at Open
	Err       error // of the last write; nil once one succeeds
}

// Stats returns the log's state.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Bytes: l.sizeLocked(), MaxBytes: l.opts.MaxBytes, Segments: len(l.segs), Full: l.full,
		Committed: l.committed, TornBytes: l.torn, Err: l.lastErr}
}

// Close stops taking appends, makes what was queued durable, and closes.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	l.broadcastLocked() // wakes a writer waiting for space: it writes past the limit
	l.mu.Unlock()
	// Appends blocked on a full queue finish once the writer drains it.
	l.sendMu.Lock()
	l.sending = false
	close(l.reqs)
	l.sendMu.Unlock()
	<-l.done
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: syncing %s: %w", dir, err)
	}
	return nil
}

// Record is one appended record.
type Record struct {
	Data []byte    // valid until the next call to Next
	Time time.Time // when it was appended
	Pos  Position  // where it starts
	End  Position  // where the next one starts
}

// Reader reads the log's records in order, from a position on.
type Reader struct {
	l   *Log
	pos Position
	f   *os.File
	r   *bufio.Reader
	buf []byte
}

// NewReader reads from pos, or from the oldest record if pos is before it.
func (l *Log) NewReader(pos Position) *Reader {
	l.mu.Lock()
	if pos.Seg < l.segs[0].num || pos.Less(Position{l.segs[0].num, 0}) {
		pos = Position{l.segs[0].num, 0}
	}
	if l.committed.Less(pos) {
		pos = Position{l.segs[0].num, 0}
	}
	l.mu.Unlock()
	return &Reader{l: l, pos: pos}
}

// Next returns the next durable record, waiting for one until ctx ends.
func (r *Reader) Next(ctx context.Context) (Record, error) {
	for {
		r.l.mu.Lock()
		committed, changed := r.l.committed, r.l.changed
		r.l.mu.Unlock()
		if r.pos.Less(committed) && r.pos.Seg == committed.Seg || r.pos.Seg < committed.Seg {
			rec, ok, err := r.read(committed)
			if err != nil {
				return Record{}, err
			}
			if ok {
				return rec, nil
			}
			continue // moved to the next segment
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

// read reads the record at r.pos, or moves to the next segment at the end
// of a finished one.
func (r *Reader) read(committed Position) (Record, bool, error) {
	if r.f == nil {
		f, err := os.Open(r.l.path(r.pos.Seg))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && r.pos.Seg < committed.Seg {
				r.pos = Position{r.pos.Seg + 1, 0}
				return Record{}, false, nil
			}
			return Record{}, false, fmt.Errorf("wal: %w", err)
		}
		if _, err := f.Seek(r.pos.Off, io.SeekStart); err != nil {
			f.Close()
			return Record{}, false, fmt.Errorf("wal: %w", err)
		}
		r.f, r.r = f, bufio.NewReaderSize(f, 1<<20)
	}
	if r.pos.Seg < committed.Seg {
		// A finished segment: read to its end, then go on to the next.
		n, rec, err := readRecord(r.r, r.buf)
		if err != nil {
			// The end, or the remains of a write that failed (and so was
			// never acknowledged) before the log moved to a new segment.
			if !errors.Is(err, io.EOF) {
				r.l.log.Warn("skipping the damaged end of a segment", "segment", r.pos.Seg, "offset", r.pos.Off, "err", err)
			}
			r.closeFile()
			r.pos = Position{r.pos.Seg + 1, 0}
			return Record{}, false, nil
		}
		return r.advance(n, rec), true, nil
	}
	n, rec, err := readRecord(r.r, r.buf)
	if err != nil {
		return Record{}, false, fmt.Errorf("wal: segment %d at %d: %w", r.pos.Seg, r.pos.Off, err)
	}
	return r.advance(n, rec), true, nil
}

func (r *Reader) advance(n int64, rec Record) Record {
	r.buf = rec.Data
	rec.Pos = r.pos
	r.pos.Off += n
	rec.End = r.pos
	return rec
}

func (r *Reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f, r.r = nil, nil
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.closeFile() }
