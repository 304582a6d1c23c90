package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTampered says the log is not as cityscreen wrote it.
var ErrTampered = errors.New("audit log tampered with")

// Problem is one place where the log is not as it was written.
type Problem struct {
	Line int    `json:"line,omitempty"` // 0 for the head, the anchor or the whole log
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Report is what Verify found.
type Report struct {
	Records int // records read
	// Signed tells that the head and the anchor were checked against the
	// key; without a key they are compared, not authenticated.
	Signed bool
	// Unsigned counts the records after the signed head: one may be a
	// record being written as Verify read, or written before a crash.
	Unsigned int
	// Problems, in the order of the log: every one is listed, so that a
	// problem found first does not hide those after it.
	Problems []Problem
}

// Summary names the first problem and how many there are.
func (r Report) Summary() string {
	switch len(r.Problems) {
	case 0:
		return "ok"
	case 1:
		return r.Problems[0].String()
	}
	return fmt.Sprintf("%s (and %d more problems)", r.Problems[0], len(r.Problems)-1)
}

// Verify checks the log at path: each line must be a record exactly as
// cityscreen writes it (no unknown or repeated key), in sequence, each
// following the one before by hash, from record 1 or from the anchor
// retention left; and the log must reach the head. With key, the head
// and the anchor must carry its signature. A record of what was found
// when the log was opened (audit.tampered) is a problem too, so that
// removing the newest records stays found after a restart. The error is
// for what could not be read; a log that does not exist, with no head,
// gives os.ErrNotExist.
func Verify(path string, key []byte) (Report, error) {
	rep := Report{Signed: len(key) > 0}
	add := func(line int, f string, a ...any) {
		rep.Problems = append(rep.Problems, Problem{Line: line, Msg: fmt.Sprintf(f, a...)})
	}
	var hd head
	hasHead, err := readJSON(headPath(path), &hd)
	if err != nil {
		add(0, "%v", err)
		hasHead = false
	}
	var an anchor
	hasAnchor, err := readJSON(anchorPath(path), &an)
	if err != nil {
		add(0, "%v", err)
		hasAnchor = false
	}
	if hasAnchor && rep.Signed && !signed(key, an.MAC, an.mac(key)) {
		add(0, "the anchor (records 1 to %d removed by retention) is not signed with the audit key: written by hand?", an.Seq)
		hasAnchor = false
	}

	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if hasHead && hd.Seq > 0 {
			add(0, "the audit log is missing: its head vouches for %d records", hd.Seq)
			return rep, nil
		}
		return rep, err
	}
	if err != nil {
		return rep, err
	}
	defer f.Close()

	var last string
	var seq uint64
	var atHead string // the hash of the record the head names
	resync := false   // after a line that is not a record: take the next as it is
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return rep, rerr
		}
		b = bytes.TrimSuffix(b, []byte{'\n'})
		if len(b) == 0 {
			if rerr == io.EOF {
				break
			}
			add(line, "an empty line where a record was due")
			continue
		}
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil || dec.More() {
			add(line, "not a record as cityscreen writes it: %v", err)
			resync = true
			continue
		}
		if canon, _ := json.Marshal(rec); !bytes.Equal(canon, b) {
			add(line, "record %d is not as cityscreen wrote it (a key repeated, reordered or respaced)", rec.Seq)
		}
		if line == 1 && hasAnchor && rec.Seq > an.Seq {
			// The records before were removed by retention: the chain
			// goes on from the anchor. (A log that still begins at or
			// before it was not yet cut when a trim was interrupted.)
			last, seq = an.Hash, an.Seq
		}
		switch {
		case resync:
			resync = false
		case rec.Seq != seq+1:
			add(line, "record %d where %d was due (records removed or reordered)", rec.Seq, seq+1)
		case rec.Prev != last:
			add(line, "record %d does not follow record %d", rec.Seq, seq)
		}
		if rec.digest() != rec.Hash {
			add(line, "record %d was edited", rec.Seq)
		}
		if rec.Action == ActionTampered {
			add(line, "record %d: when the server started at %s it found: %s", rec.Seq, rec.Time.Format("2006-01-02T15:04:05Z"), rec.Detail)
		}
		if hasHead && rec.Seq == hd.Seq {
			atHead = rec.Hash
		}
		last, seq = rec.Hash, rec.Seq
		rep.Records++
		if rerr == io.EOF {
			break
		}
	}

	switch {
	case !hasHead:
		if rep.Signed && rep.Records > 0 {
			add(0, "there is no signed head: the newest records cannot be vouched for (removed with them?)")
		}
	case rep.Signed && !signed(key, hd.MAC, hd.mac(key)):
		add(0, "the head (record %d) is not signed with the audit key: written by hand?", hd.Seq)
	case seq < hd.Seq && rep.Records == 0:
		add(0, "the audit log is empty: its head vouches for %d records", hd.Seq)
	case seq < hd.Seq:
		add(0, "records %d to %d were removed from the end: the head vouches for %d", seq+1, hd.Seq, hd.Seq)
	case atHead != hd.Hash:
		add(0, "record %d is not the one the head vouches for: the log was rewritten", hd.Seq)
	case seq > hd.Seq+1:
		rep.Unsigned = int(seq - hd.Seq)
		add(0, "records %d to %d come after the head: not written by cityscreen", hd.Seq+1, seq)
	default:
		rep.Unsigned = int(seq - hd.Seq)
	}
	return rep, nil
}
