package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// instanceLog writes instance's log of n records in dir, and returns its
// path and its head as it would tell the cluster.
func instanceLog(t *testing.T, dir, instance string, n int) (string, Head) {
	t.Helper()
	path := filepath.Join(dir, instance, "audit.log")
	os.MkdirAll(filepath.Dir(path), 0o700)
	l, err := OpenAs(path, testKey, instance)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < n; i++ {
		if err := l.Add(Record{Actor: "admin", Action: "token.create", Target: instance, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	seq, hash, _ := l.Head()
	return path, Head{Seq: seq, Hash: hash}
}

func TestClusterLogsVerifyAsOne(t *testing.T) {
	dir := t.TempDir()
	heads := map[string]Head{}
	var paths []string
	for i, name := range []string{"a", "b", "c"} {
		p, h := instanceLog(t, dir, name, 3+i)
		paths, heads[name] = append(paths, p), h
	}
	rep, err := VerifyCluster(paths, testKey, heads)
	if err != nil || !rep.OK() {
		t.Fatalf("three whole logs: %v %+v", err, rep)
	}
	if rep.Records != 4+5+6 {
		t.Fatalf("%d records, want 15", rep.Records)
	}
	hist, err := History(paths)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].Time.Before(hist[i-1].Time) {
			t.Fatalf("the history is not in time order at %d", i)
		}
	}
	seen := map[string]int{}
	for _, r := range hist {
		seen[r.Instance]++
	}
	if seen["a"] != 4 || seen["b"] != 5 || seen["c"] != 6 {
		t.Fatalf("records by instance %v", seen)
	}

	// c's state directory lost and begun again: its new log verifies on
	// its own, but not against what c told the cluster.
	os.RemoveAll(filepath.Join(dir, "c"))
	paths[2], _ = instanceLog(t, dir, "c", 1)
	rep, err = VerifyCluster(paths, testKey, heads)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "; "), `instance "c"'s log`) {
		t.Fatalf("a replaced log is not found: %+v", rep.Problems)
	}

	// A log left out, and one log given twice.
	rep, _ = VerifyCluster([]string{paths[0], paths[0]}, testKey, heads)
	all := strings.Join(rep.Problems, "; ")
	for _, want := range []string{`both instance "a"'s log`, `instance "b" told the cluster`, `instance "c" told the cluster`} {
		if !strings.Contains(all, want) {
			t.Errorf("problems %q lack %q", all, want)
		}
	}
}
