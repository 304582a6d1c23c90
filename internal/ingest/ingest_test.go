package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collect is a sink that keeps everything in memory and reports it durable
// at once, or fails everything when fail is set.
type collect struct {
	mu          sync.Mutex
	points      map[string][]feed.Point
	quarantined []string
	fail        error
}

func (c *collect) Store(id string, pts []feed.Point, _ []byte, done func(error)) {
	c.mu.Lock()
	if c.points == nil {
		c.points = map[string][]feed.Point{}
	}
	c.points[id] = append(c.points[id], pts...)
	err := c.fail
	c.mu.Unlock()
	done(err)
}

func (c *collect) Quarantine(id, topic string, payload []byte, _ time.Time, reason string, done func(error)) {
	c.mu.Lock()
	c.quarantined = append(c.quarantined, id+" "+string(payload)+" "+reason)
	err := c.fail
	c.mu.Unlock()
	done(err)
}

func (c *collect) quarantinedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.quarantined)
}

func (c *collect) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.points[id])
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testFeed(t *testing.T, prefix string) *feed.Feed {
	t.Helper()
	f, err := feed.New(feed.Spec{
		ID: "air", Topic: prefix + "/air/{district}/{station}", Measurement: "air_quality",
		Fields: map[string]feed.FieldSpec{"pm25": {Type: "float", Min: new(float64)}},
	}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// brokerURL is the Mosquitto that make test starts. Integration tests fail
// without it: they must not pass by skipping.
func brokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("CITYSCREEN_TEST_MQTT_URL")
	if u == "" {
		t.Fatal("CITYSCREEN_TEST_MQTT_URL is not set: run the tests with `make test`, which starts Mosquitto")
	}
	return u
}

func publisher(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func startIngester(t *testing.T, url string, f *feed.Feed, sink Sink) *Ingester {
	t.Helper()
	in := New(Options{URL: url, ClientID: fmt.Sprintf("test-in-%d", time.Now().UnixNano()), Workers: 2}, []*feed.Feed{f}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	return in
}

func TestIngestFromMosquitto(t *testing.T) {
	url := brokerURL(t)
	prefix := fmt.Sprintf("test/%d", time.Now().UnixNano())
	sink := &collect{}
	f := testFeed(t, prefix)
	startIngester(t, url, f, sink)
	pub := publisher(t, url)
	const n = 500
	for i := 0; i < n; i++ {
		pub.Publish(fmt.Sprintf("%s/air/daoli/s%d", prefix, i%7), 1, false, fmt.Sprintf(`{"pm25": %d}`, i))
	}
	for _, bad := range []string{`{"pm25": -1}`, `not json`, `{"pm25": "x"}`} {
		pub.Publish(prefix+"/air/daoli/s1", 1, false, bad).Wait()
	}
	pub.Publish(prefix+"/other/topic", 1, false, `{"pm25": 1}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") == n && f.Stats().Rejected == 3 && sink.quarantinedCount() == 3 })
	st := f.Stats()
	if st.Received != n+3 || st.Accepted != n {
		t.Fatalf("stats = %+v", st)
	}
	p := sink.points["air"][0]
	if d, _ := p.Tag("district"); d != "daoli" {
		t.Fatalf("point tags = %+v", p.Tags)
	}
}

func TestEmbeddedBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b, err := StartBroker(addr, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := StartBroker(addr, quiet()); err == nil {
		t.Fatal("a second broker started on a port in use")
	}
	sink := &collect{}
	f := testFeed(t, "harbin")
	in := startIngester(t, b.URL(), f, sink)
	pub := publisher(t, b.URL())
	pub.Publish("harbin/air/nangang/s1", 1, false, `{"pm25": 12.5}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.Stop(ctx)
	pub.Disconnect(100)
}

// TestOverloadIsKept: a message that finds the queue full is quarantined
// with its payload, never silently dropped.
func TestOverloadIsKept(t *testing.T) {
	f := testFeed(t, "harbin")
	sink := &collect{}
	in := New(Options{URL: "tcp://127.0.0.1:1", Queue: 1}, []*feed.Feed{f}, sink, quiet(), prometheus.NewRegistry())
	b := &fakeBroker{}
	in.receive(in.lanesNow()[0], nil, b.message("harbin/air/a/b", `{"pm25":1}`))
	in.receive(in.lanesNow()[0], nil, b.message("harbin/air/a/b", `{"pm25":2}`))
	rs := f.Rejected()
	if len(rs) != 1 || rs[0].Payload != `{"pm25":2}` || rs[0].Reason != "overload: 1 messages already waiting to be decoded" {
		t.Fatalf("rejections = %+v", rs)
	}
	if sink.quarantinedCount() != 1 || b.acks() != 1 {
		t.Fatalf("quarantined %d, acknowledged %d; want 1 and 1", sink.quarantinedCount(), b.acks())
	}
	in.Stop(context.Background())
}

// TestMessageOfSeveralFeeds: a message that two feeds match is acknowledged
// once, after both feeds' parts are durable, and not at all when a part
// fails; a message of one feed, and one of none, are acknowledged once, and
// one of one feed that fails not at all.
func TestMessageOfSeveralFeeds(t *testing.T) {
	air := testFeed(t, "harbin")
	copySpec := air.Spec()
	copySpec.ID = "air-copy"
	airCopy, err := feed.New(copySpec, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	heatSpec := testFeed(t, "heat").Spec()
	heatSpec.ID = "heat"
	heat, err := feed.New(heatSpec, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &collect{}
	reg := prometheus.NewRegistry()
	in := New(Options{URL: "tcp://127.0.0.1:1", Queue: 8, Path: "store"}, []*feed.Feed{air, airCopy, heat}, sink, quiet(), reg)
	in.workers.Add(1)
	go in.work()
	defer in.Stop(context.Background())
	b := &fakeBroker{}
	in.receive(in.lanesNow()[0], nil, b.message("harbin/air/daoli/s1", `{"pm25":1}`))
	testkit.WaitFor(t, 10*time.Second, func() bool { return b.acks() == 1 })
	if sink.count("air") != 1 || sink.count("air-copy") != 1 || sink.count("heat") != 0 {
		t.Fatalf("stored air %d, air-copy %d, heat %d; want 1, 1, 0", sink.count("air"), sink.count("air-copy"), sink.count("heat"))
	}
	in.receive(in.lanesNow()[0], nil, b.message("heat/air/daoli/s1", `{"pm25":2}`))
	in.receive(in.lanesNow()[0], nil, b.message("elsewhere/x", `{}`))
	testkit.WaitFor(t, 10*time.Second, func() bool { return b.acks() == 3 })

	sink.mu.Lock()
	sink.fail = fmt.Errorf("disk full")
	sink.mu.Unlock()
	in.receive(in.lanesNow()[0], nil, b.message("harbin/air/daoli/s1", `{"pm25":3}`))
	in.receive(in.lanesNow()[0], nil, b.message("heat/air/daoli/s1", `{"pm25":4}`))
	testkit.WaitFor(t, 10*time.Second, func() bool { return testutil.ToFloat64(in.unacked) == 2 })
	if b.acks() != 3 {
		t.Fatalf("acknowledged %d messages, want 3: a part that failed must keep the message unacknowledged", b.acks())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var timed uint64
	for _, mf := range mfs {
		if mf.GetName() == "cityscreen_ingest_ack_seconds" {
			timed = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if timed != 3 {
		t.Fatalf("cityscreen_ingest_ack_seconds counted %d acknowledgements, want 3", timed)
	}
}

// TestUnstoredMessagesAreDeliveredAgain: a message the sink could not make
// durable is not acknowledged, so the broker delivers it again to the next
// connection with the same client ID (persistent session).
func TestUnstoredMessagesAreDeliveredAgain(t *testing.T) {
	url := brokerURL(t)
	prefix := fmt.Sprintf("redeliver/%d", time.Now().UnixNano())
	clientID := fmt.Sprintf("redeliver-%d", time.Now().UnixNano())
	f := testFeed(t, prefix)
	failing := &collect{fail: fmt.Errorf("disk full")}
	in := New(Options{URL: url, ClientID: clientID, Workers: 1}, []*feed.Feed{f}, failing, quiet(), prometheus.NewRegistry())
	in.Start()
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	pub := publisher(t, url)
	for i := 0; i < 5; i++ {
		pub.Publish(fmt.Sprintf("%s/air/daoli/s1", prefix), 1, false, fmt.Sprintf(`{"pm25": %d}`, i)).Wait()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return failing.count("air") == 5 })
	in.Stop(context.Background())
	if got := testutil.ToFloat64(in.unacked); got != 5 {
		t.Fatalf("unacknowledged = %v, want 5", got)
	}

	working := &collect{}
	again := New(Options{URL: url, ClientID: clientID, Workers: 1}, []*feed.Feed{f}, working, quiet(), prometheus.NewRegistry())
	again.Start()
	testkit.WaitFor(t, 10*time.Second, func() bool { return working.count("air") == 5 })
	pub.Disconnect(100)
	again.Stop(context.Background())
}

// TestAcknowledgedMessagesAreNotDeliveredAgain: ingest writes its own
// PUBACKs; the broker takes them (300 messages pass Mosquitto's window of
// 20), paho keeps no record of them, and the next connection with the same
// client ID gets none of them again. The same with the embedded broker.
func TestAcknowledgedMessagesAreNotDeliveredAgain(t *testing.T) {
	t.Run("mosquitto", func(t *testing.T) { acknowledgedOnce(t, brokerURL(t)) })
	t.Run("embedded", func(t *testing.T) {
		b, err := StartBroker("127.0.0.1:"+freePort(t), quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		acknowledgedOnce(t, b.URL())
	})
}

func acknowledgedOnce(t *testing.T, url string) {
	prefix := fmt.Sprintf("acked/%d", time.Now().UnixNano())
	clientID := fmt.Sprintf("acked-%d", time.Now().UnixNano())
	f := testFeed(t, prefix)
	sink := &collect{}
	in := New(Options{URL: url, ClientID: clientID}, []*feed.Feed{f}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	pub := publisher(t, url)
	defer pub.Disconnect(100)
	for i := 0; i < 300; i++ {
		pub.Publish(fmt.Sprintf("%s/air/daoli/s1", prefix), 1, false, fmt.Sprintf(`{"pm25": %d}`, i)).Wait()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") == 300 })
	if kept := in.conns()[0].store.All(); len(kept) != 0 {
		t.Fatalf("paho's store kept %d entries: %v", len(kept), kept)
	}
	in.Stop(context.Background())

	again := &collect{}
	next := New(Options{URL: url, ClientID: clientID}, []*feed.Feed{f}, again, quiet(), prometheus.NewRegistry())
	next.Start()
	defer next.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, next.Connected)
	pub.Publish(fmt.Sprintf("%s/air/daoli/s1", prefix), 1, false, `{"pm25": 999}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return again.count("air") >= 1 })
	time.Sleep(200 * time.Millisecond) // anything delivered again comes before the new message; give stragglers a moment
	if n := again.count("air"); n != 1 {
		t.Fatalf("the next connection received %d messages, want only the new one", n)
	}
}

// startMosquitto runs a private Mosquitto on addr until stopped, with
// Mosquitto's shipped limits and any extra lines of configuration.
func startMosquitto(t *testing.T, port string, extra ...string) func() {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Fatal("mosquitto is not installed (apt-get install mosquitto)")
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"+strings.Join(extra, "\n")+"\n"), 0o644)
	cmd := exec.Command(path, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return func() { cmd.Process.Kill(); cmd.Wait() }
}

// TestReconnectsAfterBrokerRestart: when the broker goes away and comes
// back, the ingester reconnects by itself, resubscribes, and readings flow.
func TestReconnectsAfterBrokerRestart(t *testing.T) {
	addr := freePort(t)
	stopBroker := startMosquitto(t, addr)
	url := "tcp://127.0.0.1:" + addr
	sink := &collect{}
	f := testFeed(t, "harbin")
	in := New(Options{URL: url, ClientID: "reconnect-test", MaxReconnectInterval: 500 * time.Millisecond, Workers: 1},
		[]*feed.Feed{f}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	testkit.WaitFor(t, 10*time.Second, in.Connected)

	stopBroker()
	testkit.WaitFor(t, 10*time.Second, func() bool { return !in.Connected() })
	if err := in.Ready(); err == nil {
		t.Fatal("ready without a broker")
	}
	stopBroker = startMosquitto(t, addr)
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	pub := publisher(t, url)
	pub.Publish("harbin/air/daoli/s1", 1, false, `{"pm25": 3}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") == 1 })
	// Clients first, then the broker, so no paho reconnect outlives the test.
	pub.Disconnect(100)
	in.Stop(context.Background())
	stopBroker()
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(testkit.FreeAddr(t))
	return port
}

// TestSetFeeds: feeds added while running are subscribed at once, and the
// topics of retired feeds are no longer taken.
func TestSetFeeds(t *testing.T) {
	url := brokerURL(t)
	a := testFeed(t, fmt.Sprintf("setfeeds-a/%d", time.Now().UnixNano()))
	bPrefix := fmt.Sprintf("setfeeds-b/%d", time.Now().UnixNano())
	b, err := feed.New(feed.Spec{ID: "b", Topic: bPrefix + "/{x}", Measurement: "m", Fields: map[string]feed.FieldSpec{"v": {Type: "float"}}}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &collect{}
	in := startIngester(t, url, a, sink)
	in.SetFeeds([]*feed.Feed{a, b})
	pub := publisher(t, url)
	pub.Publish(bPrefix+"/1", 1, false, `{"v": 1}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == 1 })

	in.SetFeeds([]*feed.Feed{b})
	aTopic := strings.Replace(a.Spec().Topic, "{district}/{station}", "daoli/s1", 1)
	pub.Publish(aTopic, 1, false, `{"pm25": 1}`).Wait()
	pub.Publish(bPrefix+"/2", 1, false, `{"v": 2}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == 2 })
	if sink.count("air") != 0 || a.Stats().Received != 0 {
		t.Fatalf("a retired feed still takes messages: %d points, %+v", sink.count("air"), a.Stats())
	}
	if got := in.Feeds(); len(got) != 1 || got[0].ID() != "b" {
		t.Fatalf("Feeds() = %v", got)
	}
}

func TestRedactKeepsPasswordsOutOfLogs(t *testing.T) {
	if got := redact("ssl://cityscreen:s3cret@broker.gov:8883"); strings.Contains(got, "s3cret") || !strings.Contains(got, "broker.gov:8883") {
		t.Fatalf("redact = %q", got)
	}
}

// TestStopAgainWhileReconnecting: an ingester stopped more than once while
// its broker is away leaves nothing running. paho's Disconnect, called
// twice on a client waiting to reconnect, leaves it "disconnecting" for
// good, and a third call then waits forever; each client is disconnected
// once.
func TestStopAgainWhileReconnecting(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	port := freePort(t)
	stopBroker := startMosquitto(t, port, "sys_interval 1")
	in := New(Options{URL: "tcp://127.0.0.1:" + port, ClientID: "stop-again", Workers: 1, WatchDrops: true,
		MaxReconnectInterval: 2 * time.Second}, []*feed.Feed{testFeed(t, "again")}, &collect{}, quiet(), prometheus.NewRegistry())
	in.Start()
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	stopBroker()
	testkit.WaitFor(t, 10*time.Second, func() bool { return !in.Connected() })
	for range 3 {
		in.Stop(context.Background())
	}
	// paho ends a reconnect in progress once its wait between attempts
	// ends: what runs after that runs for good.
	for deadline := time.Now().Add(15 * time.Second); goleak.Find(ignore) != nil && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	goleak.VerifyNone(t, ignore)
}
