package hub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/panel"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("HUB_BENCH_CLIENTS_URL"); url != "" {
		n, _ := strconv.Atoi(os.Getenv("HUB_BENCH_CLIENTS"))
		benchClients(url, n) // BenchmarkFanOut's clients, in a process of their own
		return
	}
	goleak.VerifyTestMain(m)
}

func fl(x float64) *float64 { return &x }

func newHub(t *testing.T, opts Options) (*Hub, *httptest.Server) {
	t.Helper()
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), opts)
	h.AddScreen("wall", nil, []panel.View{{ID: "a", Status: panel.StatusNoData}, {ID: "b", Status: panel.StatusNoData}})
	srv := httptest.NewServer(http.HandlerFunc(h.ServeWS))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return h, srv
}

func dial(t *testing.T, srv *httptest.Server, screen string, header http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen="+screen, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// publish publishes views and sends them to every turn's clients, as a
// leading edge does.
func publish(h *Hub, screen string, views []panel.View) {
	h.Publish(screen, views)
	h.Turn(-1)
}

func readFrame(t *testing.T, conn *websocket.Conn) Frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f Frame
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func TestSnapshotThenUpdates(t *testing.T) {
	h, srv := newHub(t, Options{})
	publish(h, "wall", []panel.View{{ID: "b", Status: panel.StatusOK, Value: fl(1)}})
	conn := dial(t, srv, "wall", nil)
	f := readFrame(t, conn)
	// The client's sequence is its turn's: no frame has gone to it yet.
	if f.Type != "snapshot" || f.Screen != "wall" || f.Seq != 0 || len(f.Panels) != 2 ||
		f.Panels[0].ID != "a" || f.Panels[1].Value == nil || *f.Panels[1].Value != 1 {
		t.Fatalf("snapshot = %+v", f)
	}
	publish(h, "wall", []panel.View{{ID: "a", Status: panel.StatusWarn, Value: fl(2)}})
	f = readFrame(t, conn)
	if f.Type != "update" || f.Seq != 1 || len(f.Panels) != 1 || f.Panels[0].ID != "a" || *f.Panels[0].Value != 2 {
		t.Fatalf("update = %+v", f)
	}
	snap, _ := h.Snapshot("wall") // its seq counts the publications
	if snap.Seq != 2 || *snap.Panels[0].Value != 2 || *snap.Panels[1].Value != 1 {
		t.Fatalf("snapshot after update = %+v", snap)
	}
}

// Frames of each of the three length forms reach a client whole and in
// order, written without blocking by the fan-out workers on a plain
// connection and by each client's writer over TLS; the hub answers a
// client's ping itself.
func TestFramesPlainAndTLS(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{})
			h.AddScreen("wall", nil, []panel.View{{ID: "a"}})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(h.ServeWS))
			if tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(func() { h.Shutdown(context.Background()); srv.Close() })
			d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
			conn, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			readFrame(t, conn) // snapshot
			sizes := []int{0, 90, 200, 70_000, 300_000}
			for i, n := range sizes {
				publish(h, "wall", []panel.View{{ID: "a", Title: strings.Repeat("x", n), Value: fl(float64(i))}})
			}
			for i, n := range sizes {
				f := readFrame(t, conn)
				if f.Seq != uint64(i+1) || len(f.Panels) != 1 || len(f.Panels[0].Title) != n || *f.Panels[0].Value != float64(i) {
					t.Fatalf("frame %d: seq %d, title of %d bytes, want seq %d and %d bytes", i, f.Seq, len(f.Panels[0].Title), i+1, n)
				}
			}
			pong := make(chan string, 1)
			conn.SetPongHandler(func(data string) error { pong <- data; return nil })
			if err := conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			go conn.ReadMessage() // pongs are handled while reading
			select {
			case data := <-pong:
				if data != "are you there" {
					t.Fatalf("pong %q", data)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong")
			}
		})
	}
}

// A client that sends pings and reads nothing is answered within its
// queue's bound: the pongs it does not read take no more memory.
func TestPingFloodBounded(t *testing.T) {
	h, srv := newHub(t, Options{ClientQueue: 8})
	// A small receive buffer, so that the pongs are soon more than the
	// sockets hold and wait in the hub.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		return nd.Dial(network, addr)
	}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte(strings.Repeat("p", 125))
	for i := 0; i < 60000; i++ {
		// A loaded machine under -race may leave the hub's reader behind
		// for seconds: the pings wait for it, however long.
		if err := conn.WriteControl(websocket.PingMessage, payload, time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		var queued int
		for c := range h.screens["wall"].clients() {
			c.mu.Lock()
			queued = len(c.queue) - c.head
			c.mu.Unlock()
		}
		h.mu.Unlock()
		if queued > 8 {
			t.Fatalf("%d frames queued for a client whose bound is 8", queued)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRefusals(t *testing.T) {
	_, srv := newHub(t, Options{AllowedOrigins: []string{"https://wall.example.gov.cn"}})
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?screen="
	for _, c := range []struct {
		screen, origin string
		status         int
	}{
		{"nope", "", http.StatusNotFound},
		{"wall", "https://evil.example", http.StatusForbidden},
		{"wall", "https://wall.example.gov.cn.evil.example", http.StatusForbidden},
		{"wall", "http://" + strings.TrimPrefix(srv.URL, "http://") + ".evil", http.StatusForbidden},
	} {
		header := http.Header{}
		if c.origin != "" {
			header.Set("Origin", c.origin)
		}
		_, resp, err := websocket.DefaultDialer.Dial(url+c.screen, header)
		if err == nil || resp == nil || resp.StatusCode != c.status {
			t.Errorf("screen %q origin %q: err %v, want status %d", c.screen, c.origin, err, c.status)
		}
	}
	for _, origin := range []string{"https://wall.example.gov.cn", srv.URL} {
		dial(t, srv, "wall", http.Header{"Origin": {origin}})
	}
}

// TestSlowClientDropped: a client that stops reading is dropped once its
// queue is full, and a client that reads keeps getting every update in order.
func TestSlowClientDropped(t *testing.T) {
	h, srv := newHub(t, Options{ClientQueue: 4, WriteTimeout: 200 * time.Millisecond})
	slow := dial(t, srv, "wall", nil)
	fast := dial(t, srv, "wall", nil)
	readFrame(t, fast) // snapshot

	const updates = 400
	big := strings.Repeat("x", 64<<10) // fills the slow client's socket buffers
	got := make(chan error, 1)
	read := make(chan struct{})
	go func() {
		for want := uint64(1); want <= updates; want++ {
			fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			var f Frame
			if err := fast.ReadJSON(&f); err != nil {
				got <- err
				return
			}
			if f.Seq != want {
				got <- errors.New("out of order")
				return
			}
			read <- struct{}{}
		}
		got <- nil
	}()
	// In lockstep with the fast reader, so only the slow one falls behind.
	for i := 0; i < updates; i++ {
		publish(h, "wall", []panel.View{{ID: "a", Title: big, Value: fl(float64(i))}})
		select {
		case <-read:
		case err := <-got:
			t.Fatalf("fast client after %d updates: %v", i, err)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("fast client: %v", err)
	}
	if n := testutil.ToFloat64(h.slowDrops); n != 1 {
		t.Fatalf("slow drops = %v, want 1", n)
	}
	if n := testutil.ToFloat64(h.clients); n != 1 {
		t.Fatalf("clients = %v, want 1", n)
	}
	// The slow client finds its connection ended once it reads again.
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			break
		}
	}
}

func TestShutdownSendsGoingAway(t *testing.T) {
	h, srv := newHub(t, Options{})
	conn := dial(t, srv, "wall", nil)
	readFrame(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("read after shutdown: %v, want close 1001", err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall", nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v", err)
	}
}

// BenchmarkFanOut times one frame to every client (a leading edge: Publish
// and Turn(-1)) until every client has read it. The clients run in a second process (this test binary started again,
// see benchClients): 10,000 of them and the server's 10,000 ends would not
// fit in one process's descriptor limit here (20,000).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{ClientQueue: 64})
			h.AddScreen("wall", nil, []panel.View{{ID: "a"}})
			srv := httptest.NewServer(http.HandlerFunc(h.ServeWS))
			defer srv.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "HUB_BENCH_CLIENTS_URL=ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?screen=wall",
				fmt.Sprintf("HUB_BENCH_CLIENTS=%d", n),
				// The clients stand for browsers on other machines: a GC
				// in their process does not shrink their stacks, to grow
				// them again in the next frame on the hub's cores.
				"GODEBUG=gcshrinkstackoff=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			// The clients print "ready" once all are connected and have
			// their snapshot, then a line each time every one of them has
			// read one more frame, and, when their stdin closes, each
			// frame's delay to each client.
			lines := bufio.NewScanner(out)
			if !lines.Scan() || lines.Text() != "ready" {
				b.Fatalf("the clients did not connect: %q", lines.Text())
			}
			b.ReportAllocs()
			hubCPU, clientsCPU := cpuTime(0), cpuTime(cmd.Process.Pid)
			for b.Loop() {
				// The value is the publish time (ms), which each client
				// takes from the time it has read the frame: a reading's
				// delay to each client, the fan-out's share of it.
				publish(h, "wall", []panel.View{{ID: "a", Status: panel.StatusOK, Value: fl(float64(time.Now().UnixMicro()) / 1e3)}})
				if !lines.Scan() {
					b.Fatal("the clients ended")
				}
			}
			b.StopTimer()
			// CPU each side spends per frame: the hub (its writers and the
			// kernel's work for their writes) and the clients' process.
			b.ReportMetric(float64(cpuTime(0)-hubCPU)/float64(b.N)/1e6, "hub-cpu-ms/op")
			b.ReportMetric(float64(cpuTime(cmd.Process.Pid)-clientsCPU)/float64(b.N)/1e6, "clients-cpu-ms/op")
			stdin.Close()
			for lines.Scan() {
				var p50, p99, maxD float64
				if _, err := fmt.Sscanf(lines.Text(), "delays %g %g %g", &p50, &p99, &maxD); err == nil {
					b.ReportMetric(p50, "delay-p50-ms")
					b.ReportMetric(p99, "delay-p99-ms")
					b.ReportMetric(maxD, "delay-max-ms")
					break
				}
			}
			h.Shutdown(context.Background())
		})
	}
}

// cpuTime is the CPU (user and system) a process has used, 0 for this
// one, from /proc in clock ticks of 10 ms.
func cpuTime(pid int) time.Duration {
	name := "/proc/self/stat"
	if pid != 0 {
		name = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	// The fields after the command's name, which may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// benchClients connects n websocket clients to url and reports to stdout
// as BenchmarkFanOut expects: each frame's delay to each client is the
// time it was read less the publish time its panel's value holds.
func benchClients(url string, n int) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	// Each client keeps its own delays under its own lock, and the count
	// of frames read is one atomic: the clients share the cores with the
	// hub, so they take no lock in common.
	type clientDelays struct {
		mu sync.Mutex
		ms []float64
	}
	var read atomic.Int64
	delays := make([]clientDelays, n)
	for i := 0; i < n; i++ {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "client", i, err)
			os.Exit(1)
		}
		if _, _, err := conn.ReadMessage(); err != nil { // the snapshot
			fmt.Fprintln(os.Stderr, "client", i, err)
			os.Exit(1)
		}
		go func() {
			// Reading a number takes strconv's large frame: grow the
			// stack for it now, not in the first frame measured.
			gjson.Get(`{"panels":[{"value":1.5}]}`, "panels.0.value")
			var buf bytes.Buffer
			for {
				_, r, err := conn.NextReader()
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(r)
				}
				if err != nil {
					os.Exit(0) // the server has gone
				}
				now := float64(time.Now().UnixMicro()) / 1e3
				if sent := gjson.GetBytes(buf.Bytes(), "panels.0.value"); sent.Type == gjson.Number {
					delays[i].mu.Lock()
					delays[i].ms = append(delays[i].ms, now-sent.Num)
					delays[i].mu.Unlock()
				}
				if r := read.Add(1); r%int64(n) == 0 {
					fmt.Println(r / int64(n))
				}
			}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the benchmark is done
	// The frames were all read before the benchmark closed stdin: it
	// waits for every client's read of each frame.
	var all []float64
	for i := range delays {
		delays[i].mu.Lock()
		all = append(all, delays[i].ms...)
		delays[i].mu.Unlock()
	}
	if len(all) == 0 {
		fmt.Println("delays 0 0 0")
		os.Exit(0)
	}
	sort.Float64s(all)
	q := func(p float64) float64 { return all[min(int(p*float64(len(all))), len(all)-1)] }
	fmt.Printf("delays %g %g %g\n", q(0.5), q(0.99), all[len(all)-1])
	os.Exit(0)
}

// TestSilentClientDropped: a client that never answers pings (it never
// reads, so its pong handler never runs) is dropped after two intervals.
func TestSilentClientDropped(t *testing.T) {
	h, srv := newHub(t, Options{PingInterval: 50 * time.Millisecond})
	dial(t, srv, "wall", nil)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.clients) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that answers no pings is still connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadLimit: a client that sends more than the read limit is cut off.
func TestReadLimit(t *testing.T) {
	h, srv := newHub(t, Options{ReadLimit: 64})
	conn := dial(t, srv, "wall", nil)
	readFrame(t, conn)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 65))); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after an oversized message: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.clients) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("client still registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScreenChanges: a screen whose panels change sends its clients a new
// snapshot; a removed screen closes them.
func TestScreenChanges(t *testing.T) {
	h, srv := newHub(t, Options{})
	conn := dial(t, srv, "wall", nil)
	readFrame(t, conn)
	h.AddScreen("wall", nil, []panel.View{{ID: "c", Status: panel.StatusNoData}})
	f := readFrame(t, conn)
	if f.Type != "snapshot" || len(f.Panels) != 1 || f.Panels[0].ID != "c" || f.Seq != 1 {
		t.Fatalf("after the change: %+v", f)
	}
	publish(h, "wall", []panel.View{{ID: "c", Status: panel.StatusOK, Value: fl(3)}})
	if f := readFrame(t, conn); f.Type != "update" || f.Seq != 2 {
		t.Fatalf("update after the change: %+v", f)
	}
	h.RemoveScreen("wall")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after removal: %v", err)
	}
	if _, ok := h.Snapshot("wall"); ok {
		t.Fatal("removed screen still has a snapshot")
	}
}

// TestChattyClientDropped: a client sending more than MessageRate messages
// a second (with a burst of twice that) is closed with 1008.
func TestChattyClientDropped(t *testing.T) {
	_, srv := newHub(t, Options{MessageRate: 2})
	conn := dial(t, srv, "wall", nil)
	readFrame(t, conn)
	for i := 0; i < 10; i++ {
		if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			break // closed already
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("after 10 messages at once: %v", err)
	}
}

// TestRevokedClientClosed: ServeWSUntil closes with CloseRevoked when told.
func TestRevokedClientClosed(t *testing.T) {
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{})
	h.AddScreen("wall", nil, []panel.View{{ID: "a", Status: panel.StatusNoData}})
	revoke := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeWSUntil(w, r, revoke, "", nil) }))
	defer srv.Close()
	defer h.Shutdown(context.Background())
	conn := dial(t, srv, "wall", nil)
	readFrame(t, conn)
	close(revoke)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, CloseRevoked) {
		t.Fatalf("after revoking: %v", err)
	}
}

// TestTrendStepInProgress: an update's point of the trend's step in
// progress replaces the kept trend's last point of the same step, or
// follows it, so that snapshots show it too; the trend the update came
// after is not changed.
func TestTrendStepInProgress(t *testing.T) {
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{})
	at := func(min int) time.Time { return time.Date(2026, 11, 30, 8, min, 0, 0, time.UTC) }
	first := []panel.HistPoint{{T: at(0), V: 3}, {T: at(10), V: 1}}
	h.AddScreen("wall", nil, []panel.View{{ID: "n", History: first}})
	h.Publish("wall", []panel.View{{ID: "n", HistoryNow: &panel.HistPoint{T: at(10), V: 4}}})
	snap, _ := h.Snapshot("wall")
	if got := fmt.Sprint(snap.Panels[0].History); got != fmt.Sprint([]panel.HistPoint{{T: at(0), V: 3}, {T: at(10), V: 4}}) || snap.Panels[0].HistoryNow != nil {
		t.Fatalf("same step: %s %v", got, snap.Panels[0].HistoryNow)
	}
	h.Publish("wall", []panel.View{{ID: "n", HistoryNow: &panel.HistPoint{T: at(20), V: 2}}})
	snap, _ = h.Snapshot("wall")
	if got := fmt.Sprint(snap.Panels[0].History); got != fmt.Sprint([]panel.HistPoint{{T: at(0), V: 3}, {T: at(10), V: 4}, {T: at(20), V: 2}}) {
		t.Fatalf("a step with no point yet: %s", got)
	}
	if first[1].V != 1 {
		t.Fatalf("the trend published first was changed: %v", first)
	}
	h.Publish("wall", []panel.View{{ID: "n"}})
	if snap, _ = h.Snapshot("wall"); len(snap.Panels[0].History) != 3 {
		t.Fatalf("an update without either keeps the trend: %v", snap.Panels[0].History)
	}
}
