package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// env is what make test provides; integration tests fail without it.
func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, which starts Mosquitto and InfluxDB", name)
	}
	return v
}

// testSite writes a main file, a JSON feed, a line-protocol feed and a
// screen, all under a unique topic prefix and measurement names.
type testSite struct {
	dir, prefix, airM, heatM string
}

func newSite(t testing.TB) testSite {
	t.Helper()
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	s := testSite{dir: t.TempDir(), prefix: "test-" + id, airM: "air_" + id, heatM: "heat_" + id}
	files := map[string]string{
		"cityscreen.yaml": "hub:\n  coalesce: 50ms\ninflux:\n  flush_interval: 100ms\nhistory:\n  rollups: rollup_" + id + "\n",
		"feeds/air.yaml": fmt.Sprintf(`id: air
title: Air
topic: %s/air/{district}/{station}
measurement: %s
time: {path: ts, layout: unix_ms}
fields:
  pm25: {type: float, unit: "µg/m³", min: 0, max: 1000}
  lon: {type: float, optional: true}
  lat: {type: float, optional: true}
`, s.prefix, s.airM),
		"labels.yaml": "district:\n  daoli: {zh: 道里区, en: Daoli}\n  nangang: {zh: 南岗区, en: Nangang}\n  songbei: {zh: 松北区, en: Songbei}\n  hulan: {zh: 呼兰区, en: Hulan}\n",
		"feeds/heat.yaml": fmt.Sprintf(`id: heat
topic: %s/heat/{district}
format: line
measurement: %s
fields:
  supply_temp: {type: float, min: -40, max: 150}
`, s.prefix, s.heatM),
		"screens/test.yaml": `id: test
title: Test screen
panels:
  - {id: count, feed: air, agg: count, window: 1h}
  - {id: mean, feed: air, field: pm25, agg: mean, window: 1h, thresholds: {warn: 75, crit: 115}}
  - {id: last, feed: air, field: pm25, agg: last, window: 1h, stale_after: 1h}
  - {id: by-district, feed: air, field: pm25, agg: max, window: 1h, group_by: [district]}
  - {id: heat-max, feed: heat, field: supply_temp, agg: max, window: 1h}
`,
	}
	s.write(t, files)
	return s
}

// write puts files (by their path in the site) into the site.
func (s testSite) write(t testing.TB, files map[string]string) {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(s.dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// withEmbeddedBroker returns vars plus what runs the app with its own
// embedded broker on a free port, and that broker's URL.
func withEmbeddedBroker(t testing.TB, vars map[string]string) (map[string]string, string) {
	t.Helper()
	addr := testkit.FreeAddr(t)
	env := map[string]string{"CITYSCREEN_MQTT_URL": "", "CITYSCREEN_MQTT_EMBEDDED_ADDR": addr}
	for k, v := range vars {
		env[k] = v
	}
	return env, "tcp://" + addr
}

// start loads the site's config with the environment given, runs the app
// until the returned stop is called, and waits until it is ready.
func start(t testing.TB, site testSite, extra map[string]string) (*App, func()) {
	t.Helper()
	a, stop := launch(t, site, extra)
	testkit.WaitFor(t, 10*time.Second, func() bool { return getStatus(a.URL()+"readyz") == http.StatusOK })
	return a, stop
}

// launch runs the app and waits only until it serves HTTP. stop may be
// called early; it runs at the end of the test in any case.
func launch(t testing.TB, site testSite, extra map[string]string) (*App, func()) {
	t.Helper()
	vars := map[string]string{
		"CITYSCREEN_ADMIN_TOKEN":    testToken,
		"CITYSCREEN_HTTP_ADDR":      "127.0.0.1:0",
		"CITYSCREEN_INFLUX_URL":     env(t, "CITYSCREEN_TEST_INFLUX_URL"),
		"CITYSCREEN_STATE_DIR":      t.TempDir(),
		"CITYSCREEN_MQTT_CLIENT_ID": "cityscreen-test-" + site.prefix,
	}
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := config.Load(filepath.Join(site.dir, "cityscreen.yaml"), vars)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	// As a cleanup, it runs after those registered later: publishers
	// disconnect before the broker they use goes away.
	t.Cleanup(stop)
	testkit.WaitFor(t, 5*time.Second, func() bool { return getStatus(a.URL()+"healthz") == http.StatusOK })
	return a, stop
}

// testToken is the bootstrap admin token of the apps started here, unless
// a test gives its own.
const testToken = "test-admin-token-0123456789abcdef"

// get is GET with the test admin token.
func get(url string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	return testClient.Do(req)
}

// testClient is the HTTP client of the helpers; the HTTPS test makes it
// trust its CA.
var testClient = &http.Client{}

func getStatus(url string) int {
	resp, err := get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// authed returns a function that calls the app's API with the admin token
// and answers the status and body.
func authed(t *testing.T, a *App, token string) func(method, path, body string) (int, string) {
	return authedURL(t, a.URL(), token)
}

// authedAt is authed for a server at addr, with the test token.
func authedAt(t *testing.T, addr string) func(method, path, body string) (int, string) {
	return authedURL(t, "http://"+addr+"/", testToken)
}

func authedURL(t *testing.T, base, token string) func(method, path, body string) (int, string) {
	return func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func publisher(t testing.TB, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// countInflux counts a measurement's points with Flux.
func countInflux(t *testing.T, measurement string) int64 {
	t.Helper()
	return countInfluxAt(t, env(t, "CITYSCREEN_TEST_INFLUX_URL"), measurement)
}

// countInfluxAt counts the values of a measurement in the InfluxDB at url.
func countInfluxAt(t *testing.T, url, measurement string) int64 {
	t.Helper()
	client := influxdb2.NewClient(url, "")
	defer client.Close()
	q := fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -24h) |> filter(fn: (r) => r._measurement == %q) |> group() |> count()`, measurement)
	res, err := client.QueryAPI("-").Query(context.Background(), q)
	if err != nil {
		t.Fatalf("flux: %v", err)
	}
	defer res.Close()
	var n int64
	for res.Next() {
		n += res.Record().Value().(int64)
	}
	return n
}

// wsClient follows a screen over the websocket, keeping the latest panels.
type wsClient struct {
	conn   *websocket.Conn
	frames chan hub.Frame
	err    error  // why reading ended; set before frames is closed
	seq    uint64 // of the last frame read by until
}

func watch(t *testing.T, a *App, screen string) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(a.URL(), "http") + "ws?screen=" + screen + "&token=" + testToken
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{conn: conn, frames: make(chan hub.Frame, 1024)}
	go func() {
		defer close(c.frames)
		for {
			var f hub.Frame
			if err := conn.ReadJSON(&f); err != nil {
				c.err = err
				return
			}
			c.frames <- f
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// until reads frames until the panels seen so far satisfy cond.
func (c *wsClient) until(t *testing.T, d time.Duration, cond func(map[string]hubPanel) bool) map[string]hubPanel {
	t.Helper()
	panels := map[string]hubPanel{}
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("websocket closed")
			}
			if f.Type == "update" && f.Seq != c.seq+1 {
				t.Fatalf("update seq %d after %d", f.Seq, c.seq)
			}
			c.seq = f.Seq
			for _, p := range f.Panels {
				panels[p.ID] = hubPanel{Status: p.Status, Value: p.Value, Groups: len(p.Groups), Alert: p.Alert}
			}
			if cond(panels) {
				return panels
			}
		case <-timeout:
			t.Fatalf("panels never reached the expected state; last: %+v", panels)
		}
	}
}

type hubPanel struct {
	Status panel.Status
	Value  *float64
	Groups int
	Alert  *panel.Mark
}

func is(p hubPanel, x float64) bool { return p.Value != nil && *p.Value == x }

// TestEndToEnd: readings published to a real Mosquitto reach a real
// InfluxDB exactly once each and the right aggregates reach a websocket
// client; garbage is rejected with reasons, stored nowhere, and disturbs
// nothing else.
func TestEndToEnd(t *testing.T) {
	site := newSite(t)
	brokerURL := env(t, "CITYSCREEN_TEST_MQTT_URL")
	stateDir := t.TempDir()
	a, stop := start(t, site, map[string]string{"CITYSCREEN_MQTT_URL": brokerURL, "CITYSCREEN_STATE_DIR": stateDir})
	ws := watch(t, a, "test")
	ws.until(t, 5*time.Second, func(p map[string]hubPanel) bool { return p["count"].Status == "nodata" })

	pub := publisher(t, brokerURL)
	const n = 300
	districts := []string{"daoli", "nangang", "songbei"}
	now := time.Now()
	sum := 0.0
	for i := 0; i < n; i++ {
		x := float64(i % 100)
		sum += x
		payload := fmt.Sprintf(`{"ts": %d, "pm25": %v}`, now.Add(-time.Duration(n-i)*time.Second).UnixMilli(), x)
		pub.Publish(fmt.Sprintf("%s/air/%s/s%d", site.prefix, districts[i%3], i%5), 1, false, payload)
	}
	for _, bad := range []string{`{"ts": 1, "pm25": 5}`, `{"ts": 1700000000000, "pm25": "high"}`, `garbage`, `{"pm25": 1e9}`, ``} {
		pub.Publish(site.prefix+"/air/daoli/bad", 1, false, bad)
	}
	lines := fmt.Sprintf("x supply_temp=81.5\nx supply_temp=92 %d\n", now.UnixNano())
	pub.Publish(site.prefix+"/heat/hulan", 1, false, lines).Wait()

	panels := ws.until(t, 10*time.Second, func(p map[string]hubPanel) bool {
		return is(p["count"], n) && is(p["heat-max"], 92)
	})
	if !is(panels["mean"], sum/n) || panels["mean"].Status != "ok" {
		t.Errorf("mean = %+v, want %v ok", panels["mean"], sum/n)
	}
	if !is(panels["last"], float64((n-1)%100)) {
		t.Errorf("last = %+v", panels["last"])
	}
	if panels["by-district"].Groups != 3 {
		t.Errorf("by-district = %+v, want 3 groups", panels["by-district"])
	}

	testkit.WaitFor(t, 15*time.Second, func() bool { return countInflux(t, site.airM) >= n && countInflux(t, site.heatM) >= 2 })
	if got := countInflux(t, site.airM); got != n {
		t.Fatalf("InfluxDB holds %d air points, want exactly %d", got, n)
	}

	var feeds []struct {
		ID    string `json:"id"`
		Stats struct {
			Received, Accepted, Rejected uint64
			LastSeen                     *time.Time `json:"last_seen"`
		} `json:"stats"`
	}
	getJSON(t, a.URL()+"api/feeds", &feeds)
	for _, f := range feeds {
		if f.ID == "air" && (f.Stats.Received != n+5 || f.Stats.Accepted != n || f.Stats.Rejected != 5 || f.Stats.LastSeen == nil) {
			t.Errorf("air stats = %+v", f.Stats)
		}
	}
	var rejected []struct{ Topic, Reason, Payload string }
	getJSON(t, a.URL()+"api/feeds/air/rejected", &rejected)
	if len(rejected) != 5 {
		t.Fatalf("rejected = %+v", rejected)
	}
	reasons := ""
	for _, r := range rejected {
		reasons += r.Reason + "\n"
	}
	for _, want := range []string{"is before 2000", "want a number, got JSON string", "not valid JSON", "above the maximum 1000", "payload is empty"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no rejection says %q:\n%s", want, reasons)
		}
	}

	resp, err := get(a.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`cityscreen_feed_messages_rejected_total{feed="air"} 5`),
		fmt.Sprintf(`cityscreen_feed_messages_accepted_total{feed="air"} %d`, n),
		"cityscreen_ws_clients 1",
		`cityscreen_feed_silent{feed="air"} 0`,
		`cityscreen_feed_messages_per_second{feed="air"}`,
		"cityscreen_store_points_written_total",
		`cityscreen_feed_received_bytes_total{feed="air"}`,
		`cityscreen_ingest_decode_seconds_count{path="store"}`,
		`cityscreen_ingest_ack_seconds_bucket{path="store",le="0.001"}`,
		`cityscreen_mqtt_connected{path="store"} 1`,
		"cityscreen_panels 5",
		"cityscreen_panel_series",
		"cityscreen_store_backlog_seconds",
		"cityscreen_store_write_seconds",
		"cityscreen_alerts_active",
		"cityscreen_config_reloads_total",
		"cityscreen_ws_frames_total",
		"cityscreen_wal_bytes",
		"cityscreen_wal_commit_seconds_count",
		"cityscreen_wal_commit_records_bucket",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var snap hub.Frame
	getJSON(t, a.URL()+"api/screens/test", &snap)
	if snap.Type != "snapshot" || len(snap.Panels) != 5 {
		t.Errorf("snapshot = %+v", snap)
	}

	// Shutdown closes the websocket with "going away".
	stop()
	for range ws.frames {
	}
	if !websocket.IsCloseError(ws.err, websocket.CloseGoingAway) {
		t.Fatalf("websocket ended with %v, want a close frame 1001", ws.err)
	}

	// After a restart the rejected messages are still listed (read back
	// from the quarantine), and not counted again.
	a, _ = start(t, site, map[string]string{"CITYSCREEN_MQTT_URL": brokerURL, "CITYSCREEN_STATE_DIR": stateDir})
	getJSON(t, a.URL()+"api/feeds/air/rejected", &rejected)
	if len(rejected) != 5 {
		t.Fatalf("after a restart, %d rejected messages are listed, want 5", len(rejected))
	}
	getJSON(t, a.URL()+"api/feeds", &feeds)
	for _, f := range feeds {
		if f.ID == "air" && f.Stats.Rejected != 0 {
			t.Errorf("after a restart the air feed counts %d rejections, want 0 (counters are per process)", f.Stats.Rejected)
		}
	}
}

func TestReadyzReportsMissingServices(t *testing.T) {
	site := newSite(t)
	dead := testkit.FreeAddr(t)
	a, _ := launch(t, site, map[string]string{
		"CITYSCREEN_MQTT_URL":   "tcp://" + dead,
		"CITYSCREEN_INFLUX_URL": "http://" + dead,
	})
	var body struct {
		Ready   bool
		Reasons []string
		Storage struct {
			Forwarder string `json:"forwarder"`
			WALBytes  *int64 `json:"wal_bytes"`
		}
	}
	resp, err := get(a.URL() + "readyz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Ready || len(body.Reasons) != 2 ||
		body.Storage.Forwarder == "" || body.Storage.WALBytes == nil {
		t.Fatalf("readyz = %d %+v", resp.StatusCode, body)
	}
	if getStatus(a.URL()+"healthz") != http.StatusOK {
		t.Fatal("healthz is not 200 while serving")
	}
}

// TestReloadWhileRunning: a feed and a screen added as files are live
// without a restart; a bad file changes nothing and is reported.
func TestReloadWhileRunning(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{})
	a, _ := start(t, site, env)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(site.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("feeds/level.yaml", fmt.Sprintf("id: level\ntopic: %s/level/{gauge}\nformat: number\nmeasurement: level_%s\nfields:\n  m: {type: float}\n", site.prefix, site.prefix))
	write("screens/river.yaml", "id: river\ntitle: River\npanels:\n  - {id: level, feed: level, field: m, agg: last, window: 1h}\n")
	var screens []struct{ ID string }
	testkit.WaitFor(t, 10*time.Second, func() bool {
		getJSON(t, a.URL()+"api/screens", &screens)
		return len(screens) == 2
	})
	ws := watch(t, a, "river")
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/level/daoli-wharf", 1, false, "116.5").Wait()
	ws.until(t, 10*time.Second, func(p map[string]hubPanel) bool { return is(p["level"], 116.5) })

	// A broken file: reported, counted, and the running definitions stay.
	write("feeds/level.yaml", "id: level\ntopic: x\nformat: nope\n")
	metric := func(name string) string {
		resp, err := get(a.URL() + "metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				return strings.TrimPrefix(line, name+" ")
			}
		}
		return ""
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return metric("cityscreen_config_last_reload_successful") == "0" })
	pub.Publish(site.prefix+"/level/daoli-wharf", 1, false, "117").Wait()
	ws.until(t, 10*time.Second, func(p map[string]hubPanel) bool { return is(p["level"], 117) })
	if got := metric(`cityscreen_config_reloads_total{result="failure"}`); got == "" || got == "0" {
		t.Fatalf("failed reloads = %q", got)
	}
}

// TestRegistry: feeds registered through the API are live at once, kept
// across a restart, changed and retired; bad ones change nothing.
func TestRegistry(t *testing.T) {
	const token = testToken
	site := newSite(t)
	stateDir := t.TempDir()
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": stateDir, "CITYSCREEN_ADMIN_TOKEN": token})
	a, stop := start(t, site, env)
	call := authed(t, a, token)
	level := fmt.Sprintf(`{"id":"level","topic":"%s/level/{gauge}","format":"number","measurement":"level_%s","fields":{"m":{"type":"float","max":200}}}`, site.prefix, site.prefix)
	if code, body := call("POST", "api/feeds", level); code != http.StatusCreated || !strings.Contains(body, `"id":"level"`) {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, _ := call("POST", "api/feeds", level); code != http.StatusConflict {
		t.Fatalf("registering again: %d, want 409", code)
	}
	if code, body := call("POST", "api/feeds", `{"id":"Bad!","topic":"","fields":{"v":{"type":"decimal"}}}`); code != http.StatusBadRequest ||
		!strings.Contains(body, `"key":"id"`) || !strings.Contains(body, `"key":"topic"`) || !strings.Contains(body, `"key":"fields.v.type"`) {
		t.Fatalf("bad definition: %d %s", code, body)
	}
	if code, _ := call("DELETE", "api/feeds/air", ""); code != http.StatusConflict {
		t.Fatalf("retiring a file's feed: %d, want 409", code)
	}
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/level/wharf", 1, false, "116.5").Wait()
	accepted := func() uint64 {
		var feeds []struct {
			ID    string
			Stats struct{ Accepted uint64 }
		}
		req, _ := http.NewRequest("GET", a.URL()+"api/feeds", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&feeds)
		for _, f := range feeds {
			if f.ID == "level" {
				return f.Stats.Accepted
			}
		}
		return 0
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return accepted() == 1 })
	testkit.WaitFor(t, 15*time.Second, func() bool { return countInflux(t, "level_"+site.prefix) == 1 })

	// Kept across a restart.
	pub.Disconnect(100)
	stop()
	a, _ = start(t, site, env)
	call = authed(t, a, token)
	if code, body := call("PUT", "api/feeds/level", strings.Replace(level, `"max":200`, `"max":100`, 1)); code != http.StatusOK || !strings.Contains(body, `"max":100`) {
		t.Fatalf("update after a restart: %d %s", code, body)
	}
	if code, _ := call("DELETE", "api/feeds/level", ""); code != http.StatusNoContent {
		t.Fatalf("retire: %d", code)
	}
	if code, _ := call("DELETE", "api/feeds/level", ""); code != http.StatusNotFound {
		t.Fatalf("retire again: %d, want 404", code)
	}

	// Every change, refused ones too, is in the audit log, whose chain holds.
	var records []struct{ Action, Target, Outcome, Client string }
	code, body := call("GET", "api/audit", "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &records) != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	var got []string
	for _, r := range records {
		if r.Action == audit.ActionStart {
			continue // each start of the server
		}
		got = append(got, r.Action+" "+r.Target+" "+r.Outcome)
		if r.Client == "" {
			t.Errorf("audit record without a client: %+v", r)
		}
	}
	want := []string{"feed.retire level refused", "feed.retire level ok", "feed.update level ok", "feed.retire air refused",
		"feed.register Bad! refused", "feed.register level refused", "feed.register level ok"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit records, newest first:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep, err := audit.Verify(AuditPath(stateDir), nil); err != nil || rep.Records != len(want)+2 || len(rep.Problems) > 0 {
		t.Fatalf("audit chain: %+v, %v", rep, err)
	}
}

// TestReplay: a message rejected by a too-strict definition is stored once
// the definition is fixed and its rejects replayed, exactly once however
// often the replay runs.
func TestReplay(t *testing.T) {
	const token = testToken
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ADMIN_TOKEN": token})
	a, _ := start(t, site, env)
	call := authed(t, a, token)
	m := "level_" + site.prefix
	level := fmt.Sprintf(`{"id":"level","topic":"%s/level/{gauge}","format":"number","measurement":"%s","fields":{"m":{"type":"float","max":100}}}`, site.prefix, m)
	if code, body := call("POST", "api/feeds", level); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/level/wharf", 1, false, "150.5").Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		_, body := call("GET", "api/feeds/level/rejected", "")
		return strings.Contains(body, "above the maximum 100")
	})
	if code, body := call("PUT", "api/feeds/level", strings.Replace(level, `"max":100`, `"max":200`, 1)); code != http.StatusOK {
		t.Fatalf("fix: %d %s", code, body)
	}
	for i := 0; i < 2; i++ {
		code, body := call("POST", "api/feeds/level/rejected/replay", "")
		if code != http.StatusOK || body != "{\"rejected\":0,\"stored\":1}\n" {
			t.Fatalf("replay %d: %d %s", i+1, code, body)
		}
	}
	if _, body := call("GET", "api/feeds/level/rejected", ""); body != "[]\n" {
		t.Fatalf("after the replay, still listed: %s", body)
	}
	testkit.WaitFor(t, 15*time.Second, func() bool { return countInflux(t, m) >= 1 })
	time.Sleep(300 * time.Millisecond) // the second replay's write lands on the same key
	if n := countInflux(t, m); n != 1 {
		t.Fatalf("InfluxDB holds %d points after two replays, want 1", n)
	}
	if code, _ := call("POST", "api/feeds/nope/rejected/replay", ""); code != http.StatusNotFound {
		t.Fatalf("replay of an unknown feed: %d", code)
	}
}

// TestPreview: an engineer sees the raw messages on a topic before writing
// a definition for them.
func TestPreview(t *testing.T) {
	const token = testToken
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ADMIN_TOKEN": token})
	a, _ := start(t, site, env)
	call := authed(t, a, token)
	get := func(path string) (int, string) { return call("GET", path, "") }
	if code, _ := get("api/feeds/preview?topic=a/%23/b"); code != http.StatusBadRequest {
		t.Fatalf("bad filter: %d", code)
	}
	if code, _ := get("api/feeds/preview?topic=a/%23&seconds=99"); code != http.StatusBadRequest {
		t.Fatalf("too long: %d", code)
	}
	done := make(chan string, 1)
	go func() {
		_, body := get("api/feeds/preview?topic=" + site.prefix + "/new/%23&seconds=2")
		done <- body
	}()
	// Publish until the preview answers: it sees those after it subscribed.
	pub := publisher(t, broker)
	var body string
	for i := 0; body == ""; i++ {
		pub.Publish(fmt.Sprintf("%s/new/sensor%d", site.prefix, i), 1, false, fmt.Sprintf(`{"t": %d}`, i)).Wait()
		select {
		case body = <-done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	var msgs []struct {
		Topic, Payload string
	}
	if err := json.Unmarshal([]byte(body), &msgs); err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 3 {
		t.Fatalf("preview saw %d messages in 2 s of 10 a second: %+v", len(msgs), msgs)
	}
	for _, m := range msgs {
		var n int
		if _, err := fmt.Sscanf(m.Topic, site.prefix+"/new/sensor%d", &n); err != nil || m.Payload != fmt.Sprintf(`{"t": %d}`, n) {
			t.Fatalf("preview message %+v", m)
		}
	}
}
