package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testKey = []byte("0123456789abcdef0123456789abcdef-audit")

// write makes a log of n records (after its audit.start) signed with key.
func write(t *testing.T, key []byte, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Add(Record{Actor: "admin", Action: "feed.register", Target: "f" + string(rune('a'+i)), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return path
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func rewrite(t *testing.T, path string, ls []string) {
	t.Helper()
	body := ""
	if len(ls) > 0 {
		body = strings.Join(ls, "\n") + "\n"
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mustFind verifies the log and wants a problem saying want.
func mustFind(t *testing.T, path string, key []byte, want string) {
	t.Helper()
	rep, err := Verify(path, key)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !strings.Contains(rep.Summary()+fmtProblems(rep), want) {
		t.Fatalf("Verify found %q, want a problem saying %q", fmtProblems(rep), want)
	}
}

func fmtProblems(r Report) string {
	var s []string
	for _, p := range r.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, " | ")
}

func TestChainVerifies(t *testing.T) {
	path := write(t, testKey, 3)
	if rep, err := Verify(path, testKey); err != nil || rep.Records != 4 || len(rep.Problems) > 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	// Reopened, the chain goes on, after a record of the start.
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	l.Add(Record{Actor: "admin", Action: "feed.retire", Target: "fa", Outcome: "ok"})
	rs, _ := l.Records(10)
	l.Close()
	rep, err := Verify(path, testKey)
	if err != nil || rep.Records != 6 || len(rep.Problems) > 0 || rs[0].Action != "feed.retire" || rs[0].Seq != 6 || rs[1].Action != ActionStart {
		t.Fatalf("after reopening: %+v, %v, newest %+v", rep, err, rs[:2])
	}
}

func TestTamperingIsFound(t *testing.T) {
	for _, c := range []struct {
		name, want string
		tamper     func(path string, l []string) []string
	}{
		{"edited", "record 3 was edited", func(_ string, l []string) []string {
			l[2] = strings.Replace(l[2], `"fb"`, `"fz"`, 1)
			return l
		}},
		{"removed", "record 4 where 3 was due", func(_ string, l []string) []string { return append(l[:2], l[3:]...) }},
		{"reordered", "record 3 where 2 was due", func(_ string, l []string) []string { l[1], l[2] = l[2], l[1]; return l }},
		{"garbage", "line 3: not a record", func(_ string, l []string) []string { l[2] = "{not json"; return l }},
		{"an unknown key", "not a record", func(_ string, l []string) []string {
			l[2] = strings.Replace(l[2], `{"seq"`, `{"note":"x","seq"`, 1)
			return l
		}},
		{"a repeated key", "not as cityscreen wrote it", func(_ string, l []string) []string {
			l[2] = strings.Replace(l[2], `{"seq"`, `{"actor":"eve","seq"`, 1)
			return l
		}},
		{"the newest removed", "records 4 to 5 were removed from the end", func(_ string, l []string) []string { return l[:3] }},
		{"emptied", "the audit log is empty", func(_ string, l []string) []string { return nil }},
		{"deleted", "the audit log is missing", func(path string, l []string) []string { os.Remove(path); return nil }},
		{"head deleted", "no signed head", func(path string, l []string) []string { os.Remove(headPath(path)); return l }},
		{"head forged", "head (record 3) is not signed", func(path string, l []string) []string {
			var r Record
			json.Unmarshal([]byte(l[2]), &r)
			os.WriteFile(headPath(path), []byte(`{"seq":3,"hash":"`+r.Hash+`"}`), 0o600)
			return l[:3]
		}},
		{"appended", "come after the head", func(_ string, l []string) []string {
			// Two records chained by hand after the head: SHA-256 needs no key.
			var r Record
			json.Unmarshal([]byte(l[len(l)-1]), &r)
			for range 2 {
				r = Record{Seq: r.Seq + 1, Time: r.Time, Actor: "eve", Action: "login", Prev: r.Hash}
				r.Hash = r.digest()
				b, _ := json.Marshal(r)
				l = append(l, string(b))
			}
			return l
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, testKey, 4)
			ls := c.tamper(path, lines(t, path))
			if _, err := os.Stat(path); err == nil {
				rewrite(t, path, ls)
			}
			mustFind(t, path, testKey, c.want)
		})
	}
}

// TestTamperingStaysFound: removing the newest records is found after a
// restart has added records after the cut, and so is every problem after
// the first.
func TestTamperingStaysFound(t *testing.T) {
	path := write(t, testKey, 4)
	ls := lines(t, path)
	ls[1] = strings.Replace(ls[1], `"fa"`, `"fz"`, 1)
	rewrite(t, path, ls[:3])
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(l.Broken, ErrTampered) {
		t.Fatalf("Broken = %v", l.Broken)
	}
	l.Add(Record{Actor: "admin", Action: "login", Outcome: "ok"})
	l.Close()
	rep, err := Verify(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	got := fmtProblems(rep)
	for _, want := range []string{"record 2 was edited", "records 4 to 5 were removed from the end"} {
		if strings.Count(got, want) == 0 {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	if rep.Problems[0].Line != 2 {
		t.Errorf("the first problem is not the first bad record: %v", rep.Problems[0])
	}
}

// TestHostileInput: a field that is not UTF-8 is kept exactly (quoted)
// and raises no false alarm; a megabyte field is cut to MaxField.
func TestHostileInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	l.Add(Record{Actor: "anonymous", Action: "auth.refused", Target: "GET /api/\xff\xfe\x00", Outcome: "refused"})
	l.Add(Record{Actor: "anonymous", Action: "auth.refused", Target: "GET /" + strings.Repeat("a", 1<<20), Outcome: "refused"})
	l.Close()
	if rep, err := Verify(path, testKey); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	info, _ := os.Stat(path)
	if info.Size() > 4096 {
		t.Errorf("three records take %d bytes", info.Size())
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"\"GET /api/\\xff\\xfe\\x00\""`) || !strings.Contains(string(data), "1048581 bytes in all, sha256 ") {
		t.Errorf("the log: %s", data)
	}
}

// TestRetention: records older than the retention go, the rest still
// verify from the signed anchor; removing more than retention did, or an
// anchor written by hand, is found.
func TestRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	l, err := open(path, testKey, "", func() time.Time { return now.Add(-300 * 24 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 6; i++ {
		at := now.Add(-time.Duration(200-i*50) * 24 * time.Hour) // 200, 150, 100, 50, 0, -50 days ago
		l.now = func() time.Time { return at }
		l.Add(Record{Actor: "admin", Action: "feed.register", Target: "f", Outcome: "ok"})
	}
	l.now = func() time.Time { return now }
	removed, err := l.Trim(now.Add(-180 * 24 * time.Hour))
	if err != nil || removed != 2 { // audit.start and the first
		t.Fatalf("Trim = %d, %v", removed, err)
	}
	if rep, err := Verify(path, testKey); err != nil || rep.Records != 6 || len(rep.Problems) > 0 {
		t.Fatalf("after trimming: %+v %v", rep, err)
	}
	rs, _ := l.Records(10)
	if len(rs) != 6 || rs[0].Action != ActionTrim || !strings.Contains(rs[0].Detail, "records 1 to 2") {
		t.Fatalf("records after trimming: %+v", rs)
	}
	// Removing the oldest remaining record by hand is still found.
	ls := lines(t, path)
	rewrite(t, path, ls[1:])
	mustFind(t, path, testKey, "record 4 where 3 was due")
	// So is an anchor written by hand to cover it.
	var r Record
	json.Unmarshal([]byte(ls[0]), &r)
	os.WriteFile(anchorPath(path), []byte(`{"seq":3,"hash":"`+r.Hash+`"}`), 0o600)
	mustFind(t, path, testKey, "anchor (records 1 to 3 removed by retention) is not signed")
}

// TestUnsigned: without a key the head is still compared, so a log
// emptied or cut short is found; only a key makes it hold against someone
// who also rewrites the head.
func TestUnsigned(t *testing.T) {
	path := write(t, nil, 3)
	if rep, err := Verify(path, nil); err != nil || len(rep.Problems) > 0 || rep.Signed {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
	rewrite(t, path, lines(t, path)[:2])
	mustFind(t, path, nil, "records 3 to 4 were removed from the end")
	// A log signed with one key does not verify with another.
	path = write(t, testKey, 1)
	mustFind(t, path, []byte("another key, also thirty-two bytes long"), "head (record 2) is not signed")
}

// BenchmarkAdd: one record appended, fsynced, and its head signed and
// replaced (the cost of each audited request).
func BenchmarkAdd(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), testKey)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for b.Loop() {
		l.Add(Record{Actor: "admin", Client: "10.0.0.1", Action: "feed.update", Target: "air", Outcome: "ok"})
	}
}
