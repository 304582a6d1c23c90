// Package audit keeps a tamper-evident record of what is done through the
// API: who, what, from where, and with what outcome. Each record is a JSON
// line carrying the SHA-256 of the record before it, so editing, removing
// or reordering any record breaks the chain from there on. The newest
// record's sequence and hash (the head) and the start of the chain after
// retention (the anchor) are kept beside the log, signed with a key kept
// outside the state directory, so that removing the newest records,
// emptying or deleting the log, or forging an anchor is found too (see
// Verify, and `cityscreen audit verify`). Records are fsynced before the
// change they describe is answered. Log is safe for concurrent use.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is one audited action.
type Record struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`  // who: "admin" for the bootstrap token
	Client  string    `json:"client"` // the client's address
	Action  string    `json:"action"` // feed.register, login, audit.start, ...
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"` // ok, refused, error
	Detail  string    `json:"detail,omitempty"`
	// Instance is the instance of a cluster that wrote the record (empty
	// for a lone instance, and in records written before it joined one).
	Instance string `json:"instance,omitempty"`
	Prev     string `json:"prev"` // hash of the record before; "" for the first
	Hash     string `json:"hash"` // SHA-256 of this record with Hash empty
}

func (r Record) digest() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// MaxField is the most bytes a record keeps of one field; what is longer
// keeps its start, its length and its SHA-256, so that one request cannot
// write more than a few KiB however long its path.
const MaxField = 512

// field makes s safe and exact to record: a string that is not UTF-8 is
// kept Go-quoted ("/api/\xff": JSON would replace the bytes, and the
// record would no longer match its hash), and a long one is cut to
// MaxField bytes, ending with its length and hash.
func field(s string) string {
	if !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	if len(s) <= MaxField {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := fmt.Sprintf("… [%d bytes in all, sha256 %s]", len(s), hex.EncodeToString(sum[:]))
	cut := MaxField - len(tail)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}

// Actions the log records about itself.
const (
	ActionStart    = "audit.start"    // the log was opened by a starting server
	ActionTampered = "audit.tampered" // what was found wrong when it was opened
	ActionTrim     = "audit.trim"     // retention removed the oldest records
)

// Log is an open audit log.
type Log struct {
	// Broken is what verification found wrong when the log was opened, or
	// nil. It is also recorded (audit.tampered), so that it stays visible
	// to Verify after new records are added.
	Broken error

	mu       sync.Mutex
	f        *os.File
	path     string
	key      []byte
	instance string
	seq      uint64
	last     string
	now      func() time.Time
}

// Open opens (or creates) the log at path, verifies it with key (nil
// means unsigned: the ends of the log are then checked only against an
// unsigned head), and records that it was opened, with anything found
// wrong.
func Open(path string, key []byte) (*Log, error) { return open(path, key, "", time.Now) }

// OpenAs is Open for an instance of a cluster: every record it adds names
// the instance, so that the logs of all instances verify as one history
// (VerifyCluster).
func OpenAs(path string, key []byte, instance string) (*Log, error) {
	return open(path, key, instance, time.Now)
}

func open(path string, key []byte, instance string, now func() time.Time) (*Log, error) {
	l := &Log{path: path, key: key, instance: instance, now: now}
	rep, err := Verify(path, key)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	fresh := errors.Is(err, os.ErrNotExist)
	l.last, l.seq = lastRecord(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.f = f
	detail := fmt.Sprintf("%d records verified", rep.Records)
	switch {
	case fresh:
		detail = "a new audit log begins: there was no log and no head"
	case rep.Unsigned > 0:
		detail += fmt.Sprintf("; %d written before a stop and not yet signed are signed now", rep.Unsigned)
	}
	if len(rep.Problems) > 0 {
		l.Broken = fmt.Errorf("%w: %s", ErrTampered, rep.Summary())
		found := make([]string, len(rep.Problems))
		for i, p := range rep.Problems {
			found[i] = p.String()
		}
		if err := l.Add(Record{Actor: "cityscreen", Action: ActionTampered, Target: "audit.log", Outcome: "error", Detail: strings.Join(found, "; ")}); err != nil {
			l.f.Close()
			return nil, err
		}
	}
	if err := l.Add(Record{Actor: "cityscreen", Action: ActionStart, Target: "audit.log", Outcome: "ok", Detail: detail}); err != nil {
		l.f.Close()
		return nil, err
	}
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

// Add appends a record, durably, filling in its sequence, time and hashes,
// then signs the new head. Each field is kept as field makes it.
func (l *Log) Add(r Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Actor, r.Client, r.Action = field(r.Actor), field(r.Client), field(r.Action)
	r.Target, r.Outcome, r.Detail = field(r.Target), field(r.Outcome), field(r.Detail)
	r.Seq, r.Time, r.Prev, r.Instance = l.seq+1, l.now().UTC(), l.last, l.instance
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
	l.seq, l.last = r.Seq, r.Hash
	if err := writeHead(l.path, l.key, head{Seq: r.Seq, Hash: r.Hash, Time: r.Time}); err != nil {
		return fmt.Errorf("audit: signing the head: %w", err)
	}
	return nil
}

// Head is the newest record's sequence and hash, signed with the key when
// there is one (the MAC is empty otherwise): a checkpoint to keep outside
// the server (the log prints it at start and stop).
func (l *Log) Head() (seq uint64, hash, mac string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := head{Seq: l.seq, Hash: l.last}
	return l.seq, l.last, h.mac(l.key)
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
