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
}

// Open opens (or creates) the log at path and checks its chain.
func Open(path string) (*Log, error) {
	l := &Log{path: path}
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
	r.Seq, r.Time, r.Prev = l.seq, time.Now().UTC(), l.last
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
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, rerr := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var rec Record
			if err := json.Unmarshal(b, &rec); err != nil {
				return "", seq, fmt.Errorf("%w: line %d is not a record: %v", ErrTampered, line, err)
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
