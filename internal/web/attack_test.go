package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// send makes a request with the headers given.
func send(t testing.TB, method, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestLoginCSRF: a hostile page cannot sign its visitor in: forms and
// text/plain bodies are refused, and so is JSON from another origin.
func TestLoginCSRF(t *testing.T) {
	const pw = "snow on central street"
	srv, _, _, am := newServerWith(t, nil, 0, nil)
	am.CreateUser("wang.fang", 2, pw)
	creds := `{"user":"wang.fang","password":"` + pw + `"}`
	for _, c := range []struct {
		name   string
		header map[string]string
		body   string
		status int
	}{
		{"text/plain from a form", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, creds, 415},
		{"a url-encoded form", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}, "user=wang.fang&password=" + pw, 415},
		{"no content type", nil, creds, 415},
		{"JSON from another origin", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, creds, 403},
		{"JSON from a cross-site fetch without Origin", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, creds, 403},
		{"JSON from the server's own page", map[string]string{"Content-Type": "application/json", "Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, creds, 200},
		{"JSON from a program", map[string]string{"Content-Type": "application/json; charset=utf-8"}, creds, 200},
	} {
		resp, body := send(t, "POST", srv.URL+"/api/login", c.body, c.header)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
		if c.status != 200 && len(resp.Cookies()) > 0 {
			t.Errorf("%s: a cookie was set", c.name)
		}
	}
}

// TestTrustedProxies: behind a trusted proxy the limits and the audit log
// see each client's own address; a client cannot name itself; without
// trusted proxies the header is ignored.
func TestTrustedProxies(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			srv, _, cr, _ := newServerWith(t, nil, 1, func(d *Deps) {
				if trusted {
					d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
				}
			})
			get := func(xff string) int {
				resp, _ := send(t, "GET", srv.URL+"/api/screens", "", map[string]string{"Authorization": "Bearer " + cr["viewer"], "X-Forwarded-For": xff})
				return resp.StatusCode
			}
			// Client A spends its budget (1 a second, bursts of 2)...
			for range 3 {
				get("203.0.113.7")
			}
			if got := get("203.0.113.7"); got != http.StatusTooManyRequests {
				t.Fatalf("client A over its rate: %d", got)
			}
			// ...client B, behind the same proxy, has its own, and so
			// does B through a second trusted proxy; a spoofed leftmost
			// address does not make A someone else.
			b, spoof := get("198.51.100.9"), get("192.0.2.1, 203.0.113.7")
			switch {
			case trusted && (b != 200 || spoof != http.StatusTooManyRequests):
				t.Fatalf("behind a trusted proxy: client B %d, A spoofing %d", b, spoof)
			case !trusted && b != http.StatusTooManyRequests:
				t.Fatalf("an untrusted X-Forwarded-For was believed: %d", b)
			}
		})
	}
	s := &server{Deps: Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct {
		peer, fwd, xff, want string
	}{
		{"10.0.0.2:5000", "", "203.0.113.7", "203.0.113.7"},
		{"10.0.0.2:5000", "", "192.0.2.66, 203.0.113.7, 10.0.0.3", "203.0.113.7"},
		{"10.0.0.2:5000", `for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"`, "203.0.113.7", "2001:db8:cafe::17"},
		{"10.0.0.2:5000", "", "not-an-address, 10.0.0.9", "10.0.0.9"},
		{"10.0.0.2:5000", "", "", "10.0.0.2"},
		{"192.0.2.5:5000", "", "203.0.113.7", ""}, // not a trusted proxy
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.fwd != "" {
			r.Header.Set("Forwarded", c.fwd)
		}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		a, ok := s.forwardedFor(r)
		got := ""
		if ok {
			got = a.String()
		}
		if got != c.want {
			t.Errorf("from %s, Forwarded %q, X-Forwarded-For %q: %q, want %q", c.peer, c.fwd, c.xff, got, c.want)
		}
	}
}

// TestAuditHostileRequests: an anonymous request with bytes that are not
// UTF-8 in its path is recorded exactly and raises no false alarm; one
// with a 60 KiB path writes a record of a few hundred bytes.
func TestAuditHostileRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, []byte("a key of thirty-two bytes or more, for tests"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _, _, _ := newServerWith(t, nil, 0, func(d *Deps) { d.Auditor = al })
	bad := "not-a-valid-token-" + strings.Repeat("x", 30)
	send(t, "GET", srv.URL+"/api/feeds/%ff%fe%80", "", map[string]string{"Authorization": "Bearer " + bad})
	before, _ := os.Stat(path)
	send(t, "GET", srv.URL+"/api/"+strings.Repeat("a", 60<<10), "", map[string]string{"Authorization": "Bearer " + bad})
	after, _ := os.Stat(path)
	if grew := after.Size() - before.Size(); grew <= 0 || grew > 3*audit.MaxField {
		t.Errorf("a 60 KiB path wrote %d bytes to the audit log", grew)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `\\xff\\xfe\\x80`) {
		t.Errorf("the record does not keep the bytes exactly: %s", data)
	}
	rep, err := audit.Verify(path, []byte("a key of thirty-two bytes or more, for tests"))
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify after hostile requests: %+v %v", rep, err)
	}
}

// TestWebsocketEdges: a page whose name was rebound to the server cannot
// open a websocket when the public origin is set; a client gets at most
// its share of websockets.
func TestWebsocketEdges(t *testing.T) {
	srv, _, cr, _ := newServerWith(t, nil, 0, func(d *Deps) {
		d.PublicOrigin = "https://screens.example"
		d.WebsocketsPerClient = 2
		d.Hub = hub.New(slog.New(slog.DiscardHandler), nil, hub.Options{PublicOrigin: "https://screens.example"})
		d.Hub.AddScreen("wall", nil, []panel.View{{ID: "p", Status: panel.StatusNoData}})
		t.Cleanup(func() { d.Hub.Shutdown(context.Background()) })
	})
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?screen=wall&token=" + cr["viewer"]
	host := strings.TrimPrefix(srv.URL, "http://")
	// DNS rebinding: Origin and Host agree, on the attacker's name.
	rebound := http.Header{"Origin": {"http://evil.example:" + strings.Split(host, ":")[1]}, "Host": {"evil.example:" + strings.Split(host, ":")[1]}}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, rebound); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("a rebound name's websocket: %v %v", resp, err)
	}
	var open []*websocket.Conn
	for range 2 {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://screens.example"}})
		if err != nil {
			t.Fatalf("a websocket from the public origin: %v", err)
		}
		open = append(open, c)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third websocket: %v %v", resp, err)
	}
	open[0].Close()
	// The place comes back once the server sees the socket gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed websocket's place never came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	open[1].Close()
}

// TestSlowBodyAndHSTS: a body that never finishes is cut off; HSTS is
// sent under TLS.
func TestSlowBodyAndHSTS(t *testing.T) {
	srv, _, cr, _ := newServerWith(t, nil, 0, func(d *Deps) { d.BodyTimeout = 300 * time.Millisecond; d.TLS = true })
	if resp, _ := send(t, "GET", srv.URL+"/healthz", "", nil); !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no HSTS: %v", resp.Header)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/feeds/test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", cr["engineer"])
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		_, err = conn.Read(make([]byte, 1))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still waits for a body that never came")
	}
}

// TestDeviceCookieSparesLockout: failed sign-ins by someone else lock the
// user's name out, but not the browser that holds its device cookie.
func TestDeviceCookieSparesLockout(t *testing.T) {
	const pw = "snow on central street"
	srv, _, _, am := newServerWith(t, nil, 0, nil)
	am.CreateUser("wang.fang", 2, pw)
	login := func(password string, device *http.Cookie) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/api/login", strings.NewReader(`{"user":"wang.fang","password":"`+password+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if device != nil {
			req.AddCookie(device)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var device *http.Cookie
	for _, c := range login(pw, nil).Cookies() {
		if c.Name == "cityscreen_device" {
			device = c
		}
	}
	if device == nil || device.Path != "/api/login" || !device.HttpOnly || device.MaxAge < 86400 {
		t.Fatalf("the device cookie: %+v", device)
	}
	for range 6 {
		login("a wrong password", nil)
	}
	if resp := login(pw, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("without the device cookie after the failures: %d", resp.StatusCode)
	}
	if resp := login(pw, device); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the device cookie after the failures: %d", resp.StatusCode)
	}
}
