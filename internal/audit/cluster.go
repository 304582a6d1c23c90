package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"
)

// Head is an instance's newest audit record as it told the cluster: the
// cluster keeps every instance's, so that a log cut short or replaced is
// found by what the others hold, even with its head and anchor.
type Head struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// LogReport is what VerifyCluster found in one instance's log.
type LogReport struct {
	Path     string
	Instance string // as its records name it ("" for records before it joined a cluster)
	Report
	First, Last time.Time
}

// ClusterReport is what VerifyCluster found: each log's report, and the
// problems of the logs taken together.
type ClusterReport struct {
	Logs     []LogReport
	Records  int
	Problems []string
}

// OK reports whether every log verifies and they agree with the heads.
func (c ClusterReport) OK() bool {
	if len(c.Problems) > 0 {
		return false
	}
	for _, l := range c.Logs {
		if len(l.Problems) > 0 {
			return false
		}
	}
	return true
}

// VerifyCluster verifies the audit logs of a cluster's instances as one
// history: each log's own chain, head and anchor (Verify, with key); that
// each log is one instance's and no instance has two; and that each
// instance's log holds the record its last head in the cluster names
// (heads, by instance), so that no instance's newest records are missing.
func VerifyCluster(paths []string, key []byte, heads map[string]Head) (ClusterReport, error) {
	var out ClusterReport
	byInstance := map[string]string{}
	hashes := map[string]map[uint64]string{}
	for _, path := range paths {
		rep, err := Verify(path, key)
		if errors.Is(err, os.ErrNotExist) {
			out.Problems = append(out.Problems, fmt.Sprintf("%s: no such log, and no head", path))
			continue
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		lr := LogReport{Path: path, Report: rep}
		seqs := map[uint64]string{}
		names := map[string]bool{}
		if err := eachRecord(path, func(r Record) {
			seqs[r.Seq] = r.Hash
			if r.Instance != "" {
				names[r.Instance] = true
				lr.Instance = r.Instance
			}
			if lr.First.IsZero() || r.Time.Before(lr.First) {
				lr.First = r.Time
			}
			if r.Time.After(lr.Last) {
				lr.Last = r.Time
			}
		}); err != nil {
			return out, err
		}
		if len(names) > 1 {
			out.Problems = append(out.Problems, fmt.Sprintf("%s: records of %d instances in one log (%v)", path, len(names), sortedNames(names)))
		}
		if other, dup := byInstance[lr.Instance]; dup && lr.Instance != "" {
			out.Problems = append(out.Problems, fmt.Sprintf("%s and %s are both instance %q's log", other, path, lr.Instance))
		}
		byInstance[lr.Instance] = path
		hashes[lr.Instance] = seqs
		out.Records += rep.Records
		out.Logs = append(out.Logs, lr)
	}
	for _, name := range sortedKeys(heads) {
		h := heads[name]
		seqs, given := hashes[name]
		switch {
		case !given:
			out.Problems = append(out.Problems, fmt.Sprintf("instance %q told the cluster of record %d (%s), and its log was not given", name, h.Seq, h.Time.Format(time.RFC3339)))
		case seqs[h.Seq] == "":
			out.Problems = append(out.Problems, fmt.Sprintf("instance %q's log (%s) lacks record %d, which it told the cluster of at %s: records removed", name, byInstance[name], h.Seq, h.Time.Format(time.RFC3339)))
		case seqs[h.Seq] != h.Hash:
			out.Problems = append(out.Problems, fmt.Sprintf("instance %q's log (%s) holds another record %d than the one it told the cluster of: the log was replaced", name, byInstance[name], h.Seq))
		}
	}
	return out, nil
}

// History is every record of the logs, in time order (then instance and
// sequence): what was done across the cluster.
func History(paths []string) ([]Record, error) {
	var all []Record
	for _, path := range paths {
		if err := eachRecord(path, func(r Record) { all = append(all, r) }); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		return a.Seq < b.Seq
	})
	return all, nil
}

// eachRecord calls fn with every line of the log that is a record.
func eachRecord(path string, fn func(Record)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Hash != "" {
			fn(r)
		}
	}
	return sc.Err()
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
