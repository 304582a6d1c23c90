package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShippedConfig loads config/ exactly as `cityscreen check` does: the
// example must stay valid and its written-out defaults must be the defaults.
func TestShippedConfig(t *testing.T) {
	cfg, err := Load("../../config/cityscreen.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Feeds) != 7 || len(cfg.Screens) != 2 {
		t.Fatalf("loaded %d feeds and %d screens", len(cfg.Feeds), len(cfg.Screens))
	}
	var defaults Config
	defaults.SetDefaults()
	cfg.File, cfg.Feeds, cfg.Screens, cfg.Env, cfg.Registered = "", nil, nil, nil, nil
	defaults.MQTT.ClientID = cfg.MQTT.ClientID
	if cfg.HTTP.AllowedOrigins == nil {
		cfg.HTTP.AllowedOrigins = defaults.HTTP.AllowedOrigins
	}
	if got, want := cfg.HTTP, defaults.HTTP; got.Addr != want.Addr || got.AllowPlainHTTP != want.AllowPlainHTTP {
		t.Errorf("http section %+v differs from defaults %+v", got, want)
	}
	if cfg.MQTT != defaults.MQTT || cfg.Influx != defaults.Influx || cfg.State != defaults.State || cfg.Admin != defaults.Admin || cfg.WAL != defaults.WAL || cfg.Shutdown != defaults.Shutdown ||
		cfg.Ingest != defaults.Ingest || cfg.Hub != defaults.Hub || cfg.Log != defaults.Log {
		t.Errorf("example differs from defaults:\n%+v\n%+v", cfg, defaults)
	}
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestProblemsHaveFileAndLine(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "cityscreen.yaml", "http:\n  addr: 0.0.0.0:80\n  colour: red\nlog:\n  level: loud\n")
	feedFile := write(t, dir, "feeds/a.yaml", `id: a
topic: x/{d}
measurement: m
fields:
  v: {type: decimal}
  w: {type: float, min: 5, max: 1}
`)
	write(t, dir, "feeds/b.yaml", "id: a\ntopic: y\nmeasurement: m\nfields:\n  v: {type: float}\n  v2: {type: float}\n")
	write(t, dir, "feeds/c.yaml", "id: c\ntopic: z\nmeasurement: m\nfields: {v: {type: float}}\nwhat: 1\n")
	screen := write(t, dir, "screens/s.yaml", `id: s
panels:
  - id: p
    feed: nope
    agg: mean
  - id: q
    feed: a
    field: v2
    agg: median
    group_by: [district]
`)
	playlist := write(t, dir, "playlists/p.yaml", "id: rota\nscreens:\n  - {screen: gone, duration: 1s}\n")
	_, err := Load(main, nil)
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{
		playlist + ":3: screens.0.screen: no screen has the ID \"gone\"",
		playlist + ":3: screens.0.duration: 1s is too short",
		main + ":3: unknown key colour",
		main + ":2: http.addr: \"0.0.0.0:80\" is not a loopback address",
		main + ":5: log.level: \"loud\"",
		feedFile + ":5: fields.v.type: \"decimal\" is not a type",
		feedFile + ":6: fields.w.min: min 5 is above max 1",
		filepath.Join(dir, "feeds/c.yaml") + ":5: unknown key what",
		screen + ":4: panels.0.feed: no feed has the ID \"nope\"",
		screen + ":9: panels.1.agg: \"median\" is not an aggregate",
		screen + ":10: panels.1.group_by.0: feed \"a\" has no tag \"district\"",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
	// b.yaml repeats feed a's ID, but a.yaml is invalid, so b's a stands.
	if strings.Contains(got, "already defined") {
		t.Errorf("unexpected duplicate report:\n%s", got)
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "cityscreen.yaml", "")
	write(t, dir, "feeds/a.yaml", "id: a\ntopic: y\nmeasurement: m\nfields: {v: {type: float}}\n")
	b := write(t, dir, "feeds/b.yaml", "id: a\ntopic: z\nmeasurement: m\nfields: {v: {type: float}}\n")
	_, err := Load(main, nil)
	got := strings.Join(problems(t, err), "\n")
	if !strings.Contains(got, b+":1: id: feed \"a\" is already defined in "+filepath.Join(dir, "feeds/a.yaml")) {
		t.Fatalf("got:\n%s", got)
	}
}

func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "cityscreen.yaml", "influx:\n  token: from-file\n")
	secret := write(t, dir, "token", "s3cret\n")
	cfg, err := Load(main, map[string]string{
		"CITYSCREEN_HTTP_ADDR":            "127.0.0.1:9999",
		"CITYSCREEN_MQTT_URL":             "tcp://127.0.0.1:1883",
		"CITYSCREEN_INFLUX_TOKEN_FILE":    secret,
		"CITYSCREEN_HUB_COALESCE":         "250ms",
		"CITYSCREEN_HTTP_ALLOWED_ORIGINS": "https://a.example, https://b.example",
		"CITYSCREEN_STATE_DIR":            "/var/lib/cityscreen",
		"CITYSCREEN_CONFIG":               main,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9999" || cfg.MQTT.URL != "tcp://127.0.0.1:1883" || cfg.Influx.Token != "s3cret" ||
		cfg.Hub.Coalesce != 250*time.Millisecond || len(cfg.HTTP.AllowedOrigins) != 2 || cfg.State.Dir != "/var/lib/cityscreen" {
		t.Fatalf("environment not applied: %+v", cfg)
	}

	_, err = Load(main, map[string]string{
		"CITYSCREEN_HTTP_ADDR":     "0.0.0.0:80",
		"CITYSCREEN_INFLUX_TOKEN":  "leak-me-not",
		"CITYSCREEN_INGEST_QUEUE":  "many",
		"CITYSCREEN_NO_SUCH_THING": "1",
		"CITYSCREEN_ADMIN_TOKEN":   "short-and-secret",
	})
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{
		"CITYSCREEN_HTTP_ADDR: \"0.0.0.0:80\" is not a loopback address",
		"CITYSCREEN_INGEST_QUEUE: want an integer",
		"CITYSCREEN_NO_SUCH_THING: is not a cityscreen setting",
		"CITYSCREEN_ADMIN_TOKEN: must be at least 32 characters",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "leak-me-not") || strings.Contains(got, "short-and-secret") {
		t.Errorf("a secret appears in the problems:\n%s", got)
	}
}

func TestPlainHTTPNeedsLoopbackOrOptIn(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "cityscreen.yaml", "http:\n  addr: 0.0.0.0:8080\n  allow_plain_http: true\n")
	if _, err := Load(main, nil); err != nil {
		t.Fatal(err)
	}
}

func FuzzLoadMain(f *testing.F) {
	data, err := os.ReadFile("../../config/cityscreen.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("http: [1, 2]\n"))
	f.Add([]byte("hub:\n  coalesce: forever\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		path := filepath.Join(dir, "cityscreen.yaml")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		if cfg.HTTP.Addr == "" || cfg.Hub.ClientQueue <= 0 {
			t.Fatalf("defaults missing from a valid config: %+v", cfg)
		}
	})
}

func TestClusterAndDebugSettings(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "cityscreen.yaml", "cluster:\n  role: reader\n  share_group: a/b\nmqtt:\n  connections: 100\n  feed_connections: each\n  broker_drops: count\ndebug:\n  pprof_addr: 0.0.0.0:6060\n")
	_, err := Load(main, nil)
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{
		main + ":2: cluster.role: \"reader\": want both, ingest or screens",
		main + ":3: cluster.share_group: \"a/b\"",
		main + ":5: mqtt.connections: 100: want 1 to 64",
		main + ":6: mqtt.feed_connections: \"each\": want own or shared",
		main + ":7: mqtt.broker_drops: \"count\": want watch or ignore",
		main + ":9: debug.pprof_addr: \"0.0.0.0:6060\": the profiler listens on loopback only",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
	ok := write(t, t.TempDir(), "cityscreen.yaml", "")
	cfg, err := Load(ok, map[string]string{"CITYSCREEN_CLUSTER_ROLE": "screens", "CITYSCREEN_CLUSTER_SHARE_GROUP": "store"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Stores() || !cfg.Cluster.Serves() || cfg.MQTT.Connections != 1 || cfg.MQTT.FeedConnections != FeedConnectionsOwn {
		t.Fatalf("cluster %+v, connections %d, feed connections %q", cfg.Cluster, cfg.MQTT.Connections, cfg.MQTT.FeedConnections)
	}
}
