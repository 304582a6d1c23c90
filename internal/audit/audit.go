// Package audit keeps a tamper-evident record of every change made through
// the API: who, what, from where, and with what outcome. Each record is a
// JSON line carrying the SHA-256 of the record before it, so editing,
// removing or reordering any record breaks the chain from there on, which
// Verify (and `cityscreen audit verify`) finds. Records are fsynced before
// the change they describe is answered. Log is safe for concurrent use.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// Record is one audited action.
type Record struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`  // who: "admin" for the bootstrap token
	Client  string    `json:"client"` // the client's address
	Action  string    `json:"action"` // feed.register, feed.update, feed.retire, feed.replay
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"` // ok, refused, error
	Detail  string    `json:"detail,omitempty"`
	Prev    string    `json:"prev"` // hash of the record before; "" for the first
	Hash    string    `json:"hash"` // SHA-256 of this record with Hash empty
}

func (r Record) digest() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Log is an open audit log.
type Log struct {
	// Broken is why the chain failed verification when the log was
	// opened, or nil. New records go on from the last one that parses, so
	// the break stays visible to Verify.
	Broken error

	mu   sync.Mutex
	f    *os.File
	path string
	seq  uint64
	last string
	now  func() time.Time
}

// Open opens (or creates) the log at path and checks its chain.
func Open(path string) (*Log, error) {
	l := &Log{path: path, now: time.Now}
	last, seq, err := verify(path)
	switch {
	case errors.Is(err, ErrTampered):
		l.Broken = err
		last, seq = lastRecord(path)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.f, l.seq, l.last = f, seq, last
	return l, nil
}

// lastRecord returns the hash and sequence of the last record that parses.
func lastRecord(path string) (string, uint64) {
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(data), []byte{'\n'})
	for i := len(lines) - 1; i >= 0; i-- {
		var r Record
		if json.Unmarshal(lines[i], &r) == nil && r.Hash != "" {
			return r.Hash, r.Seq
		}
	}
	return "", 0
}

// Add appends a record, durably, filling in its sequence, time and hashes.
func (l *Log) Add(r Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	r.Seq, r.Time, r.Prev = l.seq, l.now().UTC(), l.last
	r.Hash = r.digest()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	l.last = r.Hash
	return nil
}

// Records returns the records, newest first, at most n.
func (l *Log) Records(n int) ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, err := os.ReadFile(l.path)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte{'\n'}) {
		var r Record
		if len(line) > 0 && json.Unmarshal(line, &r) == nil {
			out = append(out, r)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// Close closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ErrTampered says a record was edited, removed or reordered.
var ErrTampered = errors.New("audit log tampered with")

// Verify checks the whole chain of the log at path. It returns the number
// of records, or an error naming the first bad one.
func Verify(path string) (int, error) {
	_, n, err := verify(path)
	return int(n), err
}

func verify(path string) (last string, seq uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	a, err := readAnchor(path)
	if err != nil {
		return "", 0, err
	}
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, rerr := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var rec Record
			if err := json.Unmarshal(b, &rec); err != nil {
				return "", seq, fmt.Errorf("%w: line %d is not a record: %v", ErrTampered, line, err)
			}
			if line == 1 && a != nil && rec.Seq == a.Seq+1 {
				// The records before were removed by retention: the
				// chain goes on from the anchor.
				last, seq = a.Hash, a.Seq
			}
			switch {
			case rec.Seq != seq+1:
				return "", seq, fmt.Errorf("%w: line %d has record %d where %d was due (removed or reordered)", ErrTampered, line, rec.Seq, seq+1)
			case rec.Prev != last:
				return "", seq, fmt.Errorf("%w: record %d (line %d) does not follow record %d", ErrTampered, rec.Seq, line, seq)
			case rec.digest() != rec.Hash:
				return "", seq, fmt.Errorf("%w: record %d (line %d) was edited", ErrTampered, rec.Seq, line)
			}
			last, seq = rec.Hash, rec.Seq
		}
		if rerr == io.EOF {
			return last, seq, nil
		}
		if rerr != nil {
			return "", seq, rerr
		}
	}
}

// anchor is where the chain starts once retention removed its oldest
// records: the last removed record's sequence and hash.
type anchor struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Trimmed time.Time `json:"trimmed"`
}

func anchorPath(path string) string { return path + ".anchor" }

func readAnchor(path string) (*anchor, error) {
	b, err := os.ReadFile(anchorPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a anchor
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: the anchor %s: %v", ErrTampered, anchorPath(path), err)
	}
	return &a, nil
}

// Trim removes the records older than before (retention), keeping the
// chain verifiable: the last removed record's hash is kept as the anchor
// the remaining records follow, and the trim is itself recorded. It
// returns how many records it removed.
func (l *Log) Trim(before time.Time) (int, error) {
	l.mu.Lock()
	data, err := os.ReadFile(l.path)
	if err != nil {
		l.mu.Unlock()
		return 0, err
	}
	lines := bytes.SplitAfter(data, []byte{'\n'})
	cut := 0
	var last Record
	for cut < len(lines) {
		var r Record
		if len(bytes.TrimSpace(lines[cut])) == 0 || json.Unmarshal(lines[cut], &r) != nil || !r.Time.Before(before) {
			break
		}
		last = r
		cut++
	}
	if cut == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	// The anchor first: a crash before the log is rewritten leaves a log
	// that still verifies from its first record.
	ab, _ := json.Marshal(anchor{Seq: last.Seq, Hash: last.Hash, Trimmed: l.now().UTC()})
	err = atomicfile.Write(anchorPath(l.path), ab)
	if err == nil {
		err = atomicfile.Write(l.path, bytes.Join(lines[cut:], nil))
	}
	if err == nil {
		l.f.Close()
		l.f, err = os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	}
	l.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("audit: trimming: %w", err)
	}
	return cut, l.Add(Record{Actor: "cityscreen", Action: "audit.trim", Target: "audit.log", Outcome: "ok",
		Detail: fmt.Sprintf("retention removed records %d to %d, older than %s", last.Seq-uint64(cut)+1, last.Seq, before.UTC().Format(time.RFC3339))})
}
