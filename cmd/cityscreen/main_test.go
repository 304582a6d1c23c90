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
	if !strings.Contains(out.String(), "ok (7 feeds, 2 screens, 0 warnings)") {
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
	l, err := audit.Open(filepath.Join(state, "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b", "c"} {
		l.Add(audit.Record{Actor: "admin", Action: "feed.register", Target: target, Outcome: "ok"})
	}
	l.Close()
	out.Reset()
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok, 4 records") {
		t.Fatalf("good log: %d %q %q", code, out.String(), errOut.String())
	}
	path := filepath.Join(state, "audit.log")
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"target":"b"`), []byte(`"target":"x"`), 1), 0o600)
	errOut.Reset()
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "line 3: record 3 was edited") {
		t.Fatalf("edited log: %d %q", code, errOut.String())
	}
}

// TestAuditVerifySigned: with the audit key (kept outside the state
// directory) the newest records removed, the log emptied or deleted are
// found; a key inside the state directory is refused.
func TestAuditVerifySigned(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cityscreen.yaml")
	state := filepath.Join(dir, "state")
	os.WriteFile(main, []byte("state:\n  dir: "+state+"\n"), 0o644)
	keyFile := filepath.Join(dir, "audit.key")
	os.WriteFile(keyFile, []byte("3f1c0a8e5b7d92e4c6a1f0b3d5e7c9a2\n"), 0o600)
	t.Setenv("CITYSCREEN_AUTH_AUDIT_KEY_FILE", keyFile)
	os.MkdirAll(state, 0o700)
	path := filepath.Join(state, "audit.log")
	l, err := audit.Open(path, []byte("3f1c0a8e5b7d92e4c6a1f0b3d5e7c9a2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b", "c"} {
		l.Add(audit.Record{Actor: "admin", Action: "feed.register", Target: target, Outcome: "ok"})
	}
	l.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok, 4 records (head and anchor signed") {
		t.Fatalf("good log: %d %q %q", code, out.String(), errOut.String())
	}
	data, _ := os.ReadFile(path)
	ls := bytes.SplitAfter(data, []byte("\n"))
	for _, c := range []struct {
		name string
		do   func()
		want string
	}{
		{"the newest two removed", func() { os.WriteFile(path, bytes.Join(ls[:2], nil), 0o600) }, "records 3 to 4 were removed from the end"},
		{"emptied", func() { os.WriteFile(path, nil, 0o600) }, "the audit log is empty"},
		{"deleted", func() { os.Remove(path) }, "the audit log is missing"},
	} {
		c.do()
		errOut.Reset()
		if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%s: exit %d %q", c.name, code, errOut.String())
		}
	}
	inside := filepath.Join(state, "audit.key")
	os.WriteFile(inside, []byte("3f1c0a8e5b7d92e4c6a1f0b3d5e7c9a2"), 0o600)
	t.Setenv("CITYSCREEN_AUTH_AUDIT_KEY_FILE", inside)
	errOut.Reset()
	if code := run([]string{"audit", "verify", "-config", main}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "outside the state directory") {
		t.Errorf("a key inside the state directory: exit %d %q", code, errOut.String())
	}
}

// TestCheckWarns: labels that name no district of the map, a station off
// the map and a hole in the layout are warned of, and do not fail check.
func TestCheckWarns(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cityscreen.yaml", "state: {dir: "+filepath.Join(dir, "state")+"}\n")
	write("maps/city.geojson", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"道里区"},"geometry":{"type":"Polygon","coordinates":[[[126,45],[127,45],[127,46],[126,46],[126,45]]]}}]}`)
	write("labels.yaml", "district:\n  daoli: {zh: 道里区, en: Daoli}\n  nangang: {zh: 南岗区, en: Nangang}\n")
	write("stations.yaml", "s1: {lon: 126.5, lat: 45.5}\ns2: {lon: 120, lat: 30}\n")
	write("feeds/air.yaml", "id: air\ntopic: air/{district}/{station}\nmeasurement: air\nfields:\n  pm25: {type: float}\n")
	write("screens/wall.yaml", `id: wall
map: {file: maps/city.geojson}
layout: {columns: 3, rows: 1}
panels:
  - {id: m, feed: air, field: pm25, agg: mean, group_by: [district], view: map, place: {col: 1, row: 1}}
  - {id: s, feed: air, field: pm25, agg: last, group_by: [station], view: map, stations: stations.yaml, place: {col: 2, row: 1}}
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", filepath.Join(dir, "cityscreen.yaml")}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"warning: labels: district value nangang (南岗区) names no feature of the map maps/city.geojson",
		"warning: panel s: station s2 at lon 120, lat 30 is off the map",
		"warning: layout: 1 cells no panel covers, the first at column 3, row 1",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "daoli") || !strings.Contains(out.String(), "3 warnings") {
		t.Errorf("out %q, err %q", out.String(), errOut.String())
	}
}
