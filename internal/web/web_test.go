package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/auth"
	"github.com/cityscreen/cityscreen/internal/citymap"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/panel"
)

type fakeScreens []panel.ScreenSpec

func (s fakeScreens) Screens() []panel.ScreenSpec { return s }

type fakeFeeds []*feed.Feed

func (f fakeFeeds) Feeds() []*feed.Feed { return f }
func (f fakeFeeds) Subscription(id string) (ingest.Subscription, bool) {
	if f.Feed(id) == nil {
		return ingest.Subscription{}, false
	}
	return ingest.Subscription{ClientIDs: []string{"cs." + id}, State: "refused"}, true
}
func (f fakeFeeds) BrokerDrops() (ingest.BrokerDrops, bool) {
	last := time.Date(2026, 11, 30, 13, 46, 56, 0, time.UTC)
	return ingest.BrokerDrops{Stats: true, Total: 6387, LastDrop: &last}, true
}
func (f fakeFeeds) Feed(id string) *feed.Feed {
	for _, x := range f {
		if x.ID() == id {
			return x
		}
	}
	return nil
}

// creds are bearer values for each kind of principal of a test server.
type creds map[string]string

const adminToken = "0123456789abcdef0123456789abcdef"

func newServer(t testing.TB, ready error) (*httptest.Server, *feed.Feed, creds) {
	t.Helper()
	srv, f, c, _ := newServerWith(t, ready, 0, nil)
	return srv, f, c
}

func newServerWith(t testing.TB, ready error, apiRate int, change func(*Deps)) (*httptest.Server, *feed.Feed, creds, *auth.Manager) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(log, nil, hub.Options{})
	h.AddScreen("wall", nil, []panel.View{{ID: "p", Status: panel.StatusNoData}})
	h.AddScreen("lobby", nil, []panel.View{{ID: "q", Status: panel.StatusNoData}})
	f, err := feed.New(feed.Spec{ID: "air", Topic: "a/{d}", Measurement: "m", Fields: map[string]feed.FieldSpec{"v": {Type: "float"}}}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	am, err := auth.Open(auth.Options{Path: filepath.Join(t.TempDir(), "auth.json"), SessionIdle: time.Hour, SessionMax: time.Hour,
		AccountAttempts: 5, AddressAttempts: 100, LockoutWindow: time.Minute, Lockout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	am.SetBootstrapToken(adminToken)
	c := creds{"admin": adminToken}
	screens := func(kind, id string) bool { return kind == "screen" && (id == "wall" || id == "lobby") }
	for _, r := range auth.Roles() {
		secret, _, err := am.CreateToken(auth.TokenRequest{Name: r.String(), Role: r}, "test", screens)
		if err != nil {
			t.Fatal(err)
		}
		c[r.String()] = secret
	}
	c["display"], _, err = am.CreateToken(auth.TokenRequest{Name: "wall-1", Kind: auth.KindDisplay, Screens: []string{"wall"}}, "test", screens)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{
		Hub: h, Screens: fakeScreens{{ID: "wall", Title: feed.PlainText("Wall"), Map: wallMap(t)}, {ID: "lobby", Title: feed.PlainText("Lobby")}}, Feeds: fakeFeeds{f},
		Ready:     []Check{{Name: "influxdb", Check: func(context.Context) error { return ready }}},
		Gatherer:  prometheus.NewRegistry(),
		Dashboard: fstest.MapFS{"index.html": {Data: []byte("<h1>cityscreen</h1>")}, "js/live.js": {Data: []byte("//")}},
		Log:       log, Auth: am, Auditor: al, APIRate: apiRate,
	}
	if change != nil {
		change(&d)
	}
	srv := httptest.NewServer(Handler(d))
	t.Cleanup(func() { h.Shutdown(context.Background()); srv.Close(); al.Close() })
	return srv, f, c, am
}

// do makes a request with a bearer value ("" for none).
func do(t testing.TB, method, url, bearer, body string) (*http.Response, string) {
	t.Helper()
	var header map[string]string
	if bearer != "" {
		header = map[string]string{"Authorization": "Bearer " + bearer}
	}
	return send(t, method, url, body, header)
}

func TestRoutes(t *testing.T) {
	srv, f, cr := newServer(t, nil)
	f.Handle("a/x", []byte("garbage"), time.Now())
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, `"ok"`},
		{"GET", "/readyz", 200, `"ready":true`},
		{"GET", "/api/screens", 200, `[{"id":"wall","title":"Wall"},{"id":"lobby","title":"Lobby"}]`},
		{"GET", "/api/screens/wall", 200, `"type":"snapshot"`},
		{"GET", "/api/screens/nope", 404, `no such screen`},
		{"GET", "/api/feeds", 200, `"stats":{"received":1,"accepted":0,"rejected":1`},
		{"GET", "/api/feeds", 200, `"subscription":{"client_ids":["cs.air"],"state":"refused"}`},
		{"GET", "/api/feeds/air/rejected", 200, `"reason":"payload is not valid JSON"`},
		{"GET", "/api/feeds/nope/rejected", 404, `no such feed`},
		{"GET", "/api/nothing", 404, `no such API route`},
		{"POST", "/api/screens", 405, `method not allowed`},
		{"PUT", "/api/feeds/air/rejected", 405, `method not allowed`},
		{"DELETE", "/index.html", 405, `method not allowed`},
		{"GET", "/", 200, `cityscreen`},
		{"GET", "/metrics", 200, ``},
		{"GET", "/ws?screen=nope", 404, `no such screen`},
		{"GET", "/js/", 404, ``}, // no directory listings
	} {
		resp, body := do(t, c.method, srv.URL+c.path, cr["admin"], "")
		if resp.StatusCode != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s %s = %d %s, want %d containing %s", c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s %s: CSP %q", c.method, c.path, csp)
		}
	}
}

func TestReadyzNamesTheReason(t *testing.T) {
	srv, _, _ := newServer(t, errors.New("writes are failing"))
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

func TestDryRun(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	feedJSON := `{"id":"air","topic":"harbin/env/air/{district}/{station}","measurement":"air_quality",
		"time":{"path":"ts","layout":"unix_ms"},
		"fields":{"pm25":{"path":"pm25","type":"float","min":0,"max":1000},"aqi":{"type":"int"}}}`
	for _, c := range []struct {
		name, body string
		status     int
		want       []string
	}{
		{"points", `{"feed":` + feedJSON + `,"topic":"harbin/env/air/daoli/s1","payload":"{\"ts\":1795600000000,\"pm25\":41.5,\"aqi\":58}"}`, 200,
			[]string{`"measurement":"air_quality"`, `"tags":{"district":"daoli","station":"s1"}`, `"fields":{"aqi":58,"pm25":41.5}`, `"time":"2026-11-25T09:46:40Z"`, `"rejected":[]`,
				`"types":{"aqi":"int","pm25":"float"}`, `"line":"air_quality,district=daoli,station=s1 aqi=58i,pm25=41.5 1795600000000000000"`}},
		{"rejected", `{"feed":` + feedJSON + `,"topic":"harbin/env/air/daoli/s1","payload":"{\"ts\":1795600000000,\"pm25\":\"high\",\"aqi\":1}"}`, 200,
			[]string{`"points":[]`, `"reason":"field pm25 (path \"pm25\"): want a number, got JSON string \"high\""`}},
		{"wrong topic", `{"feed":` + feedJSON + `,"topic":"harbin/traffic/x","payload":"{}"}`, 200,
			[]string{`does not match the feed's topic`}},
		{"bad definition", `{"feed":{"id":"Bad","topic":"a/{x}/{x}","fields":{"v":{"type":"decimal"}}},"topic":"a","payload":"1"}`, 400,
			[]string{`"key":"id"`, `"key":"topic"`, `"key":"measurement"`, `"key":"fields.v.type"`}},
		{"unknown key", `{"feed":` + feedJSON + `,"topic":"t","payload":"","colour":"red"}`, 400, []string{`unknown field \"colour\"`}},
		{"not JSON", `feed: air`, 400, []string{`the body must be`}},
	} {
		resp, body := do(t, "POST", srv.URL+"/api/feeds/test", cr["engineer"], c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: answer lacks %s: %s", c.name, w, body)
			}
		}
	}
	big := `{"feed":` + feedJSON + `,"topic":"t","payload":"` + strings.Repeat("x", maxDryRunBody) + `"}`
	resp, _ := do(t, "POST", srv.URL+"/api/feeds/test", cr["engineer"], big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a request over the limit: %d", resp.StatusCode)
	}
	resp, _ = do(t, "GET", srv.URL+"/api/feeds/test", cr["engineer"], "")
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(resp.Header.Get("Allow"), "POST") {
		t.Errorf("GET /api/feeds/test: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// concrete fills a route pattern's wildcards.
func concrete(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{id}", "air", "{name}", "nobody").Replace(path)
	if strings.HasPrefix(path, "/api/screens/") {
		path = "/api/screens/wall"
	}
	if strings.HasPrefix(path, "/api/tokens/") {
		path = "/api/tokens/tok_none"
	}
	if path == "/ws" {
		path = "/ws?screen=wall"
	}
	return method, path
}

// TestEveryRouteWithEveryRole walks the whole route table with no
// credentials, wrong ones, each role and a display token: each is let
// through exactly when the route's role allows it.
func TestEveryRouteWithEveryRole(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	principals := []struct {
		name string
		role auth.Role
	}{{"", auth.None}, {"wrong", auth.None}, {"viewer", auth.Viewer}, {"operator", auth.Operator},
		{"engineer", auth.Engineer}, {"admin", auth.Admin}, {"display", auth.Viewer}}
	routes := Routes()
	if len(routes) < 25 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		method, path := concrete(rt.Pattern)
		for _, p := range principals {
			bearer := cr[p.name]
			if p.name == "wrong" {
				bearer = auth.NewToken()
			}
			resp, body := do(t, method, srv.URL+path, bearer, "")
			var want string
			switch {
			case rt.Role == auth.None:
				want = "through"
			case p.role == auth.None:
				want = "401"
			case p.role < rt.Role, p.name == "display" && !rt.Display:
				want = "403"
			default:
				want = "through"
			}
			got := "through"
			if resp.StatusCode == 401 || resp.StatusCode == 403 {
				got = strconv.Itoa(resp.StatusCode)
			}
			if got != want {
				t.Errorf("%s %s as %q: %d %s, want %s", method, path, p.name, resp.StatusCode, body, want)
			}
		}
	}
}

func TestDisplaySeesItsScreensOnly(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	if resp, body := do(t, "GET", srv.URL+"/api/screens", cr["display"], ""); resp.StatusCode != 200 || body != `[{"id":"wall","title":"Wall"}]`+"\n" {
		t.Fatalf("a display's screens: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/screens/lobby", cr["display"], ""); resp.StatusCode != 403 {
		t.Fatalf("another screen: %d", resp.StatusCode)
	}
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")
	if _, resp, err := websocket.DefaultDialer.Dial(ws+"/ws?screen=lobby&token="+cr["display"], nil); err == nil || resp.StatusCode != 403 {
		t.Fatalf("websocket to another screen: %v", err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(ws+"/ws?screen=wall&token="+cr["display"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestCrossOriginWebsocketRefused(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?screen=wall&token=" + cr["viewer"]
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, origin := range []string{"http://evil.example", "http://" + host + ".evil.example", "https://" + host, "null"} {
		_, resp, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {origin}})
		if err == nil || resp.StatusCode != 403 {
			t.Errorf("origin %s: %v", origin, err)
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatalf("own origin: %v", err)
	}
	conn.Close()
}

// TestRevokedTokenClosesItsSocket: revoking a token closes its open
// websockets with 4001 at once.
func TestRevokedTokenClosesItsSocket(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	resp, body := do(t, "GET", srv.URL+"/api/tokens", cr["admin"], "")
	var tokens []auth.Token
	json.Unmarshal([]byte(body), &tokens)
	id := ""
	for _, tok := range tokens {
		if tok.Name == "wall-1" {
			id = tok.ID
		}
	}
	if resp.StatusCode != 200 || id == "" || strings.Contains(body, cr["display"]) || strings.Contains(body, `"hash"`) {
		t.Fatalf("token list %d %s", resp.StatusCode, body)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall&token="+cr["display"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.ReadMessage() // the snapshot
	if resp, body := do(t, "DELETE", srv.URL+"/api/tokens/"+id, cr["admin"], ""); resp.StatusCode != 200 || !strings.Contains(body, `"revoked_by":"token:admin (`) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 {
		t.Fatalf("after revoking, the socket got %v, want close 4001 within a second", err)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/screens", cr["display"], ""); resp.StatusCode != 401 {
		t.Fatalf("revoked token still works: %d", resp.StatusCode)
	}
}

// TestSignIn: a session cookie with CSRF on changes, sign-out everywhere,
// lockout, and every step in the audit log.
func TestSignIn(t *testing.T) {
	srv, _, cr, am := newServerWith(t, nil, 0, nil)
	const pw = "snow on central street"
	if resp, body := do(t, "POST", srv.URL+"/api/users", cr["admin"], `{"name":"wang.fang","role":"engineer","password":"`+pw+`"}`); resp.StatusCode != 201 {
		t.Fatalf("create user: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", srv.URL+"/api/users", cr["admin"], `{"name":"x","role":"engineer","password":"short"}`); resp.StatusCode != 400 || !strings.Contains(body, "at least 12") {
		t.Fatalf("weak password: %d %s", resp.StatusCode, body)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	post := func(path, csrf, body string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := post("/api/login", "", `{"user":"wang.fang","password":"wrong password"}`)
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/api/login", "", `{"user":"wang.fang","password":"`+pw+`"}`)
	var me struct{ Role, CSRF string }
	json.Unmarshal([]byte(body), &me)
	if resp.StatusCode != 200 || me.Role != "engineer" || me.CSRF == "" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	c := resp.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Name != auth.SessionCookie {
		t.Fatalf("cookie %+v", c)
	}
	if resp, _ := client.Get(srv.URL + "/api/feeds/air/rejected"); resp.StatusCode != 200 {
		t.Fatalf("engineer route with the cookie: %d", resp.StatusCode)
	}
	dry := `{"feed":{"id":"x","topic":"t","measurement":"m","fields":{"v":{"type":"float"}}},"topic":"t","payload":"{\"v\":1}"}`
	if resp, body := post("/api/feeds/test", "", dry); resp.StatusCode != 403 || !strings.Contains(body, "X-CSRF-Token") {
		t.Fatalf("a change without the CSRF header: %d %s", resp.StatusCode, body)
	}
	if resp, body := post("/api/feeds/test", me.CSRF, dry); resp.StatusCode != 200 {
		t.Fatalf("a change with the CSRF header: %d %s", resp.StatusCode, body)
	}
	// A socket opened with the cookie closes when the user signs out.
	hdr := http.Header{"Cookie": {c.Name + "=" + c.Value}}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.ReadMessage()
	if resp, _ := post("/api/logout", me.CSRF, ""); resp.StatusCode != 204 {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 {
		t.Fatalf("after sign-out the socket got %v", err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/me", nil)
	req.Header.Set("Cookie", c.Name+"="+c.Value)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 401 {
		t.Fatalf("the old cookie after sign-out: %d", resp.StatusCode)
	}
	// Lockout: five failures in a row lock the account.
	for i := 0; i < 5; i++ {
		post("/api/login", "", `{"user":"wang.fang","password":"still wrong"}`)
	}
	if resp, _ := post("/api/login", "", `{"user":"wang.fang","password":"`+pw+`"}`); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a locked account: %d", resp.StatusCode)
	}
	_ = am
	resp, body = do(t, "GET", srv.URL+"/api/audit", cr["admin"], "")
	for _, want := range []string{`"action":"user.create","target":"wang.fang","outcome":"ok"`, `"action":"auth.signin","target":"wang.fang","outcome":"refused"`,
		`"actor":"user:wang.fang"`, `"action":"auth.signout"`, `missing or wrong X-CSRF-Token`} {
		if !strings.Contains(body, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	if strings.Contains(body, pw) {
		t.Error("a password is in the audit log")
	}
}

func TestAPIRateLimit(t *testing.T) {
	srv, _, cr, _ := newServerWith(t, nil, 2, nil)
	limited := false
	for i := 0; i < 10; i++ {
		if resp, _ := do(t, "GET", srv.URL+"/api/screens", cr["viewer"], ""); resp.StatusCode == 429 {
			limited = true
		}
	}
	if !limited {
		t.Fatal("10 requests at once at 2 a second were all answered")
	}
}

func FuzzLoginBody(f *testing.F) {
	f.Add(`{"user":"a","password":"b"}`)
	f.Add(`{"user":1}`)
	f.Add(`{`)
	srv, _, _ := newServer(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		resp, _ := do(t, "POST", srv.URL+"/api/login", "", body)
		if resp.StatusCode == 200 || resp.StatusCode >= 500 {
			t.Fatalf("%q: %d", body, resp.StatusCode)
		}
	})
}

// TestBrokerDrops: GET /api/broker tells a signed-in viewer what the
// broker reported dropping, and nobody else.
func TestBrokerDrops(t *testing.T) {
	srv, _, c := newServer(t, nil)
	resp, body := do(t, "GET", srv.URL+"/api/broker", c["viewer"], "")
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"watching":true,"stats":true,"dropped_total":6387,"last_drop":"2026-11-30T13:46:56Z"}` {
		t.Fatalf("viewer: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/broker", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/broker", c["display"], ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("display: %d", resp.StatusCode)
	}
}

const wallGeoJSON = `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"道里区"},"geometry":{"type":"Polygon","coordinates":[[[126,45],[127,45],[127,46],[126,46],[126,45]]]}}]}`

func wallMap(t testing.TB) *panel.MapSpec {
	geo, err := citymap.Parse([]byte(wallGeoJSON), "name")
	if err != nil {
		t.Fatal(err)
	}
	return &panel.MapSpec{File: "maps/city.geojson", Key: "district", Name: "name", Geo: geo}
}

func TestScreenMap(t *testing.T) {
	srv, _, cr := newServer(t, nil)
	resp, body := do(t, "GET", srv.URL+"/api/screens/wall/map", cr["display"], "")
	if resp.StatusCode != 200 || body != wallGeoJSON || resp.Header.Get("Content-Type") != "application/geo+json" {
		t.Fatalf("the wall's map: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/screens/wall/map", nil)
	req.Header.Set("Authorization", "Bearer "+cr["viewer"])
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("map again with its ETag: %d", again.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/screens/lobby/map", cr["display"], ""); resp.StatusCode != 403 {
		t.Errorf("a display, another screen's map: %d", resp.StatusCode)
	}
	if resp, body := do(t, "GET", srv.URL+"/api/screens/lobby/map", cr["viewer"], ""); resp.StatusCode != 404 || !strings.Contains(body, "has no map") {
		t.Errorf("a screen without a map: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/screens/wall/map", "", ""); resp.StatusCode != 401 {
		t.Errorf("anonymous: %d", resp.StatusCode)
	}
}
