package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
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

func TestChainVerifies(t *testing.T) {
	path := write(t, 3)
	if n, err := Verify(path); err != nil || n != 3 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	// Reopened, the chain goes on.
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Add(Record{Actor: "admin", Action: "feed.retire", Target: "fa", Outcome: "ok"})
	rs, _ := l.Records(10)
	l.Close()
	if n, err := Verify(path); err != nil || n != 4 || rs[0].Action != "feed.retire" || rs[0].Seq != 4 {
		t.Fatalf("after reopening: %d, %v, newest %+v", n, err, rs[0])
	}
}

func TestTamperingIsFound(t *testing.T) {
	for name, tamper := range map[string]func([]string) []string{
		"edited":    func(l []string) []string { l[1] = strings.Replace(l[1], `"fb"`, `"fz"`, 1); return l },
		"removed":   func(l []string) []string { return append(l[:1], l[2:]...) },
		"reordered": func(l []string) []string { l[0], l[1] = l[1], l[0]; return l },
		"garbage":   func(l []string) []string { l[2] = "{not json"; return l },
	} {
		t.Run(name, func(t *testing.T) {
			path := write(t, 4)
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			os.WriteFile(path, []byte(strings.Join(tamper(lines), "\n")+"\n"), 0o600)
			if _, err := Verify(path); !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify after the log was %s: %v", name, err)
			}
		})
	}
}

// TestRetention: records older than the retention go, the rest still
// verify from the anchor, and removing more than retention did is found.
func TestRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		at := now.Add(-time.Duration(200-i*50) * 24 * time.Hour) // 200, 150, 100, 50, 0, -50 days ago
		l.now = func() time.Time { return at }
		l.Add(Record{Actor: "admin", Action: "feed.register", Target: "f", Outcome: "ok"})
	}
	l.now = func() time.Time { return now }
	removed, err := l.Trim(now.Add(-180 * 24 * time.Hour))
	if err != nil || removed != 1 {
		t.Fatalf("Trim = %d, %v", removed, err)
	}
	if n, err := Verify(path); err != nil || n != 7 {
		t.Fatalf("after trimming: %d %v", n, err)
	}
	rs, _ := l.Records(10)
	if len(rs) != 6 || rs[0].Action != "audit.trim" || !strings.Contains(rs[0].Detail, "records 1 to 1") {
		t.Fatalf("records after trimming: %+v", rs)
	}
	// Removing the oldest remaining record by hand is still found.
	data, _ := os.ReadFile(path)
	_, rest, _ := strings.Cut(string(data), "\n")
	os.WriteFile(path, []byte(rest), 0o600)
	if _, err := Verify(path); !errors.Is(err, ErrTampered) {
		t.Fatalf("a removed record after trimming: %v", err)
	}
}
