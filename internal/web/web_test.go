package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/panel"
)

type fakeScreens []panel.ScreenSpec

func (s fakeScreens) Screens() []panel.ScreenSpec { return s }

type fakeFeeds []*feed.Feed

func (f fakeFeeds) Feeds() []*feed.Feed { return f }
func (f fakeFeeds) Feed(id string) *feed.Feed {
	for _, x := range f {
		if x.ID() == id {
			return x
		}
	}
	return nil
}

func newServer(t *testing.T, ready error) (*httptest.Server, *feed.Feed) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(log, nil, hub.Options{})
	h.AddScreen("wall", []panel.View{{ID: "p", Status: panel.StatusNoData}})
	f, err := feed.New(feed.Spec{ID: "air", Topic: "a/{d}", Measurement: "m", Fields: map[string]feed.FieldSpec{"v": {Type: "float"}}}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Deps{
		Hub: h, Screens: fakeScreens{{ID: "wall", Title: "Wall"}}, Feeds: fakeFeeds{f},
		Ready:     []Check{{Name: "influxdb", Check: func(context.Context) error { return ready }}},
		Gatherer:  prometheus.NewRegistry(),
		Dashboard: fstest.MapFS{"index.html": {Data: []byte("<h1>cityscreen</h1>")}},
		Log:       log,
	}))
	t.Cleanup(func() { h.Shutdown(context.Background()); srv.Close() })
	return srv, f
}

func TestRoutes(t *testing.T) {
	srv, f := newServer(t, nil)
	f.Handle("a/x", []byte("garbage"), time.Now())
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, `"ok"`},
		{"GET", "/readyz", 200, `"ready":true`},
		{"GET", "/api/screens", 200, `[{"id":"wall","title":"Wall"}]`},
		{"GET", "/api/screens/wall", 200, `"type":"snapshot"`},
		{"GET", "/api/screens/nope", 404, `no such screen`},
		{"GET", "/api/feeds", 200, `"stats":{"received":1,"accepted":0,"rejected":1`},
		{"GET", "/api/feeds/air/rejected", 200, `"reason":"payload is not valid JSON"`},
		{"GET", "/api/feeds/nope/rejected", 404, `no such feed`},
		{"GET", "/api/nothing", 404, `no such API route`},
		{"POST", "/api/screens", 405, `method not allowed`},
		{"PUT", "/api/feeds/air/rejected", 405, `method not allowed`},
		{"DELETE", "/index.html", 405, `method not allowed`},
		{"GET", "/", 200, `cityscreen`},
		{"GET", "/metrics", 200, ``},
		{"GET", "/ws?screen=nope", 404, `no such screen`},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%s %s = %d %s, want %d containing %s", c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s %s: CSP %q", c.method, c.path, csp)
		}
	}
}

func TestReadyzNamesTheReason(t *testing.T) {
	srv, _ := newServer(t, errors.New("writes are failing"))
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 503 || body.Ready || len(body.Reasons) != 1 || body.Reasons[0] != "influxdb: writes are failing" {
		t.Fatalf("readyz = %d %+v", resp.StatusCode, body)
	}
}

func TestAdminToken(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(log, nil, hub.Options{})
	h.AddScreen("wall", []panel.View{{ID: "p"}})
	srv := httptest.NewServer(Handler(Deps{
		Hub: h, Screens: fakeScreens{{ID: "wall"}}, Feeds: fakeFeeds{}, Gatherer: prometheus.NewRegistry(),
		Dashboard: fstest.MapFS{"index.html": {Data: []byte("page")}}, Log: log, AdminToken: token,
	}))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	for _, c := range []struct {
		path, auth string
		status     int
	}{
		{"/api/screens", "", 401},
		{"/api/screens", "Bearer wrong", 401},
		{"/api/screens", "Bearer " + token + "x", 401},
		{"/api/screens", "Basic " + token, 401},
		{"/api/screens?token=" + token, "", 401}, // only the websocket takes it in the query
		{"/api/screens", "Bearer " + token, 200},
		{"/api/nothing", "", 401}, // unknown routes do not reveal themselves either
		{"/metrics", "", 401},
		{"/metrics", "Bearer " + token, 200},
		{"/ws?screen=wall", "", 401},
		{"/ws?screen=wall&token=nope", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/", "", 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("GET %s (%q) = %d, want %d", c.path, c.auth, resp.StatusCode, c.status)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", c.path)
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall&token="+token, nil)
	if err != nil {
		t.Fatalf("websocket with the token: %v", err)
	}
	conn.Close()
}

func TestDryRun(t *testing.T) {
	srv, _ := newServer(t, nil)
	feedJSON := `{"id":"air","topic":"harbin/env/air/{district}/{station}","measurement":"air_quality",
		"time":{"path":"ts","layout":"unix_ms"},
		"fields":{"pm25":{"path":"pm25","type":"float","min":0,"max":1000},"aqi":{"type":"int"}}}`
	for _, c := range []struct {
		name, body string
		status     int
		want       []string
	}{
		{"points", `{"feed":` + feedJSON + `,"topic":"harbin/env/air/daoli/s1","payload":"{\"ts\":1795600000000,\"pm25\":41.5,\"aqi\":58}"}`, 200,
			[]string{`"measurement":"air_quality"`, `"tags":{"district":"daoli","station":"s1"}`, `"fields":{"aqi":58,"pm25":41.5}`, `"time":"2026-11-25T09:46:40Z"`, `"rejected":[]`}},
		{"rejected", `{"feed":` + feedJSON + `,"topic":"harbin/env/air/daoli/s1","payload":"{\"ts\":1795600000000,\"pm25\":\"high\",\"aqi\":1}"}`, 200,
			[]string{`"points":[]`, `"reason":"field pm25 (path \"pm25\"): want a number, got JSON string \"high\""`}},
		{"wrong topic", `{"feed":` + feedJSON + `,"topic":"harbin/traffic/x","payload":"{}"}`, 200,
			[]string{`does not match the feed's topic`}},
		{"bad definition", `{"feed":{"id":"Bad","topic":"a/{x}/{x}","fields":{"v":{"type":"decimal"}}},"topic":"a","payload":"1"}`, 400,
			[]string{`"key":"id"`, `"key":"topic"`, `"key":"measurement"`, `"key":"fields.v.type"`}},
		{"unknown key", `{"feed":` + feedJSON + `,"topic":"t","payload":"","colour":"red"}`, 400, []string{`unknown field \"colour\"`}},
		{"not JSON", `feed: air`, 400, []string{`the body must be`}},
	} {
		resp, err := http.Post(srv.URL+"/api/feeds/test", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
		}
		for _, w := range c.want {
			if !strings.Contains(string(body), w) {
				t.Errorf("%s: answer lacks %s: %s", c.name, w, body)
			}
		}
	}
	big := `{"feed":` + feedJSON + `,"topic":"t","payload":"` + strings.Repeat("x", maxDryRunBody) + `"}`
	resp, err := http.Post(srv.URL+"/api/feeds/test", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a request over the limit: %d", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/api/feeds/test")
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(resp.Header.Get("Allow"), "POST") {
		t.Errorf("GET /api/feeds/test: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestRegistryNeedsAToken: without an admin token configured, nobody may
// change the feeds.
func TestRegistryNeedsAToken(t *testing.T) {
	srv, _ := newServer(t, nil)
	for _, c := range []struct{ method, path string }{{"POST", "/api/feeds"}, {"PUT", "/api/feeds/air"}, {"DELETE", "/api/feeds/air"},
		{"POST", "/api/feeds/air/rejected/replay"}, {"GET", "/api/feeds/preview?topic=%23"}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s without a configured token: %d, want 403", c.method, c.path, resp.StatusCode)
		}
	}
}
