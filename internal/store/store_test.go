package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/feed"
)

func TestMain(m *testing.M) {
	// net/http keeps idle connections of the InfluxDB client in the tests.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"))
}

// influxURL is the InfluxDB that make test starts. Integration tests fail
// without it: they must not pass by skipping.
func influxURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("CITYSCREEN_TEST_INFLUX_URL")
	if u == "" {
		t.Fatal("CITYSCREEN_TEST_INFLUX_URL is not set: run the tests with `make test`, which starts InfluxDB")
	}
	return u
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func points(measurement string, n int, at time.Time) []feed.Point {
	out := make([]feed.Point, n)
	for i := range out {
		v, _ := lineprotocol.FloatValue(float64(i))
		out[i] = feed.Point{
			Measurement: measurement,
			Tags:        []feed.Tag{{Key: "station", Value: fmt.Sprintf("s%02d", i%10)}},
			Fields:      []feed.Field{{Key: "pm25", Value: v}},
			Time:        at.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return out
}

// countPoints counts a measurement's points in the test database with Flux.
func countPoints(t *testing.T, url, measurement string) int64 {
	t.Helper()
	client := influxdb2.NewClient(url, "")
	defer client.Close()
	q := fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -1h) |> filter(fn: (r) => r._measurement == %q) |> group() |> count()`, measurement)
	res, err := client.QueryAPI("-").Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer res.Close()
	var n int64
	for res.Next() {
		n += res.Record().Value().(int64)
	}
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	return n
}

func runStore(t *testing.T, s *Store) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, 5*time.Second); close(done) }()
	return func() { cancel(); <-done }
}

func TestWriteToInfluxDB(t *testing.T) {
	url := influxURL(t)
	m := fmt.Sprintf("store_test_%d", time.Now().UnixNano())
	s := New(Options{URL: url, Org: "-", Bucket: "city/autogen", BatchSize: 700, FlushInterval: 50 * time.Millisecond}, quiet(), prometheus.NewRegistry())
	stop := runStore(t, s)
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}
	now := time.Now().Add(-time.Minute)
	s.Write(points(m, 1500, now))
	s.Write(points(m, 500, now)) // the same keys again: overwritten, not doubled
	deadline := time.Now().Add(10 * time.Second)
	for s.Buffered() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if n := countPoints(t, url, m); n != 1500 {
		t.Fatalf("InfluxDB holds %d points, want 1500", n)
	}
	if w := testutil.ToFloat64(s.written); w != 2000 {
		t.Fatalf("written = %v, want 2000", w)
	}
}

func TestRefusedBatchIsCountedNotRetried(t *testing.T) {
	url := influxURL(t)
	m := fmt.Sprintf("store_refused_%d", time.Now().UnixNano())
	s := New(Options{URL: url, Org: "-", Bucket: "city/autogen", FlushInterval: 20 * time.Millisecond}, quiet(), prometheus.NewRegistry())
	stop := runStore(t, s)
	defer stop()
	s.Write(points(m, 1, time.Now()))
	waitFor(t, func() bool { return testutil.ToFloat64(s.written) == 1 })
	str, _ := lineprotocol.StringValue("not a number")
	s.Write([]feed.Point{{Measurement: m, Fields: []feed.Field{{Key: "pm25", Value: str}}, Time: time.Now()}})
	waitFor(t, func() bool { return testutil.ToFloat64(s.dropped.WithLabelValues("refused")) == 1 })
	if s.Buffered() != 0 {
		t.Fatalf("refused point still buffered")
	}
	if err := s.Ready(context.Background()); err == nil {
		t.Fatal("ready after a refused write")
	}
}

// TestRetriesUntilAccepted uses a stand-in for InfluxDB that is overloaded
// at first: the batch must stay buffered and arrive whole once it recovers.
func TestRetriesUntilAccepted(t *testing.T) {
	var calls, accepted atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"code":"unavailable","message":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		dec := lineprotocol.NewDecoderWithBytes(body)
		for dec.Next() {
			accepted.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := New(Options{URL: srv.URL, Org: "-", Bucket: "city/autogen", FlushInterval: 20 * time.Millisecond}, quiet(), prometheus.NewRegistry())
	stop := runStore(t, s)
	defer stop()
	s.Write(points("m", 10, time.Now()))
	waitFor(t, func() bool { return calls.Load() >= 1 })
	if s.Buffered() != 10 {
		t.Fatalf("after a 503, buffered = %d, want 10", s.Buffered())
	}
	waitFor(t, func() bool { return accepted.Load() == 10 })
	if got := testutil.ToFloat64(s.failures.WithLabelValues("true")); got != 2 {
		t.Fatalf("retried failures = %v, want 2", got)
	}
}

func TestBufferBound(t *testing.T) {
	s := New(Options{URL: "http://127.0.0.1:1", MaxBuffered: 100, BatchSize: 1000}, quiet(), prometheus.NewRegistry())
	s.Write(points("m", 80, time.Now()))
	s.Write(points("m", 80, time.Now()))
	if s.Buffered() != 100 {
		t.Fatalf("buffered = %d, want 100", s.Buffered())
	}
	if got := testutil.ToFloat64(s.dropped.WithLabelValues("buffer_full")); got != 60 {
		t.Fatalf("dropped = %v, want 60", got)
	}
	s.client.Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
