package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
