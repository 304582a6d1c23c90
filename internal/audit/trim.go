package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// Trim removes the records older than before (retention), keeping the
// chain verifiable: the last removed record's hash is kept, signed, as the
// anchor the remaining records follow, and the trim is itself recorded. It
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
	err = writeAnchor(l.path, l.key, anchor{Seq: last.Seq, Hash: last.Hash, Trimmed: l.now().UTC()})
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
	return cut, l.Add(Record{Actor: "cityscreen", Action: ActionTrim, Target: "audit.log", Outcome: "ok",
		Detail: fmt.Sprintf("retention removed records %d to %d, older than %s", last.Seq-uint64(cut)+1, last.Seq, before.UTC().Format(time.RFC3339))})
}
