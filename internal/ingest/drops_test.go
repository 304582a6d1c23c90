package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// logBuffer is a slog destination tests can read while it is written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBrokerDropsReported: messages Mosquitto drops because of its shipped
// limits (here, 500 past the 1,000 it queues for another client's
// persistent session) show in cityscreen's metric and log, on a
// connection of their own that neither the store connections nor
// readiness count.
func TestBrokerDropsReported(t *testing.T) {
	port := freePort(t)
	stopBroker := startMosquitto(t, port, "sys_interval 1")
	defer stopBroker()
	url := "tcp://127.0.0.1:" + port
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	f := testFeed(t, "drops")
	in := New(Options{URL: url, ClientID: "drops-test", Workers: 1, WatchDrops: true, PerFeed: true,
		MaxReconnectInterval: 500 * time.Millisecond}, []*feed.Feed{f}, &collect{}, slog.New(slog.NewTextHandler(logs, nil)), reg)
	in.Start()
	defer in.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	stats := func() float64 { return gathered(t, reg, "cityscreen_broker_stats") }
	dropped := func() float64 { return gathered(t, reg, "cityscreen_broker_dropped_messages_total") }
	testkit.WaitFor(t, 10*time.Second, func() bool { return stats() == 1 })
	if n := dropped(); n != 0 {
		t.Fatalf("a fresh broker reports %v dropped", n)
	}

	// A persistent session away while 1,500 messages come for it: the
	// broker queues 1,000 and drops the rest.
	away := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("drops-away").SetCleanSession(false))
	if tok := away.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := away.Subscribe("elsewhere/x", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away.Disconnect(100)
	pub := publisher(t, url)
	for i := 0; i < 1500; i++ {
		if tok := pub.Publish("elsewhere/x", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return dropped() >= 500 })
	if n := dropped(); n != 500 {
		t.Fatalf("dropped = %v, want 500", n)
	}
	// Whether the broker's count of 0 came first depends on when its first
	// report of statistics went out: the warning has the new total.
	testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "broker_dropped_total=500") })
	if !strings.Contains(logs.String(), "level=WARN msg=\"the MQTT broker dropped messages because of its limits") {
		t.Fatalf("no warning in the log:\n%s", logs.String())
	}
	if up, all := in.up(); up != 1 || all != 1 {
		t.Fatalf("store connections: %d up of %d, want 1 of 1 (the watch is not one)", up, all)
	}
	if err := in.Ready(); err != nil {
		t.Fatal(err)
	}
	pub.Disconnect(100)
	in.Stop(context.Background())
}

// gathered is the value of a metric without labels in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestDropReports: what each report of a broker's count does.
func TestDropReports(t *testing.T) {
	logs := &logBuffer{}
	in := New(Options{URL: "tcp://127.0.0.1:1", ClientID: "x", WatchDrops: true}, nil, &collect{}, slog.New(slog.NewTextHandler(logs, nil)), nil)
	w := in.drops
	const warn = "level=WARN msg=\"the MQTT broker dropped messages because of its limits (max_inflight_messages, max_queued_messages): readings sent to cityscreen may be lost; see docs/reliability.md\" component=ingest "
	mosquitto, mochi := DropTopics[0], DropTopics[1]
	for _, step := range []struct {
		topic, payload string
		count          int64
		log            string
	}{
		{UptimeTopic, "12 seconds", 0, ""},
		{mosquitto, "120", 120, warn + "broker_dropped_total=120"}, // sent when it changed
		{mosquitto, "120", 120, ""},
		{mosquitto, "150\n", 150, warn + "dropped=30 broker_dropped_total=150"},
		{mosquitto, "not a number", 150, ""},
		{mosquitto, "-4", 150, ""},
		{mosquitto, "7", 7, "level=INFO msg=\"the MQTT broker's count of dropped messages started again (the broker restarted)\" component=ingest broker_dropped_total=7"},
		{mochi, "0", 7, ""},
		{mochi, "5", 12, warn + "dropped=5 broker_dropped_total=5"},
	} {
		before := len(logs.String())
		w.take(step.topic, step.payload)
		if got := w.count.Load(); got != step.count {
			t.Errorf("after %s %q: count %d, want %d", step.topic, step.payload, got, step.count)
		}
		logged := logs.String()[before:]
		if (step.log == "") != (logged == "") || !strings.Contains(logged, step.log) {
			t.Errorf("after %s %q: logged %q, want %q", step.topic, step.payload, logged, step.log)
		}
	}
	m := w.metrics()
	if c := testutil.ToFloat64(m[0]); c != 12 {
		t.Errorf("dropped metric %v, want 12", c)
	}
	if c := testutil.ToFloat64(m[1]); c != 1 {
		t.Errorf("stats metric %v, want 1", c)
	}
}

// TestEmbeddedBrokerDrops: the embedded broker's count is followed too.
func TestEmbeddedBrokerDrops(t *testing.T) {
	b, err := StartBroker("127.0.0.1:"+freePort(t), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := prometheus.NewRegistry()
	in := New(Options{URL: b.URL(), ClientID: "embedded-drops", Workers: 1, WatchDrops: true}, []*feed.Feed{testFeed(t, "embedded")}, &collect{}, quiet(), reg)
	in.Start()
	defer in.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, func() bool {
		in.drops.mu.Lock()
		defer in.drops.mu.Unlock()
		_, ok := in.drops.last[DropTopics[1]]
		return ok
	})
	if gathered(t, reg, "cityscreen_broker_stats") != 1 || gathered(t, reg, "cityscreen_broker_dropped_messages_total") != 0 {
		t.Fatal("the embedded broker's statistics are not followed")
	}
	in.Stop(context.Background())
}
