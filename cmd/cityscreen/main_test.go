package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
