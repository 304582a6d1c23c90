package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cityscreen/cityscreen/internal/audit"
)

func TestCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", "../../config/cityscreen.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("check of the shipped config: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "ok (7 feeds, 2 screens)") {
		t.Fatalf("output %q", out.String())
	}

	dir := t.TempDir()
	main := filepath.Join(dir, "cityscreen.yaml")
	os.WriteFile(main, []byte("http:\n  adr: 1\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "feeds"), 0o755)
	os.WriteFile(filepath.Join(dir, "feeds", "x.yaml"), []byte("id: x\ntopic: a\nformat: csv\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", "-config", main}, &out, &errOut); code != 1 {
		t.Fatalf("check of a bad config: exit %d", code)
	}
	for _, want := range []string{main + ":2: unknown key adr", filepath.Join(dir, "feeds", "x.yaml") + ":3: format: \"csv\" is not a format"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if code := run([]string{"launch"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "launch"`) {
		t.Fatalf("unknown command: exit %d %q", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "cityscreen ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cityscreen.yaml")
	state := filepath.Join(dir, "state")
	os.WriteFile(main, []byte("state:\n  dir: "+state+"\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "no audit log yet") {
		t.Fatalf("no log: %d %q %q", code, out.String(), errOut.String())
	}
	os.MkdirAll(state, 0o700)
	l, err := audit.Open(filepath.Join(state, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b", "c"} {
		l.Add(audit.Record{Actor: "admin", Action: "feed.register", Target: target, Outcome: "ok"})
	}
	l.Close()
	out.Reset()
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok, 3 records") {
		t.Fatalf("good log: %d %q %q", code, out.String(), errOut.String())
	}
	path := filepath.Join(state, "audit.log")
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"target":"b"`), []byte(`"target":"x"`), 1), 0o600)
	errOut.Reset()
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "record 2 (line 2) was edited") {
		t.Fatalf("edited log: %d %q", code, errOut.String())
	}
}
