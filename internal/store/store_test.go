package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/testkit"
	"github.com/cityscreen/cityscreen/internal/wal"
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

type quarantine struct {
	mu    sync.Mutex
	lines []string
}

func (q *quarantine) Refused(line, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lines = append(q.lines, line+" | "+reason)
	return nil
}

func (q *quarantine) got() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.lines...)
}

func openLog(t *testing.T, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir, SegmentBytes: 16 << 10}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendLines appends n messages of one point each, numbered from first.
func appendLines(t *testing.T, l *wal.Log, measurement string, first, n int, at time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	for i := first; i < first+n; i++ {
		var enc lineprotocol.Encoder
		enc.StartLine(measurement)
		enc.AddTag("station", fmt.Sprintf("s%02d", i%10))
		enc.AddField("n", lineprotocol.IntValue(int64(i)))
		enc.EndLine(at.Add(time.Duration(i) * time.Millisecond))
		wg.Add(1)
		l.Append(enc.Bytes(), func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
}

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
	return n
}

func run(s *Store) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, 5*time.Second); close(done) }()
	return func() { cancel(); <-done }
}

func TestForwardToInfluxDB(t *testing.T) {
	url := influxURL(t)
	dir := t.TempDir()
	l := openLog(t, dir)
	m := fmt.Sprintf("fwd_%d", time.Now().UnixNano())
	now := time.Now().Add(-time.Minute)
	appendLines(t, l, m, 0, 1500, now)
	s := New(Options{URL: url, Org: "-", Bucket: "city/autogen", BatchSize: 400, FlushInterval: 50 * time.Millisecond,
		Checkpoint: CheckpointPath(dir)}, l, &quarantine{}, quiet(), prometheus.NewRegistry())
	stop := run(s)
	appendLines(t, l, m, 1500, 500, now)
	testkit.WaitFor(t, 15*time.Second, func() bool { return testutil.ToFloat64(s.written) == 2000 })
	stop()
	if n := countPoints(t, url, m); n != 2000 {
		t.Fatalf("InfluxDB holds %d points, want 2000", n)
	}
	if st := l.Stats(); st.Segments != 1 {
		t.Fatalf("forwarded segments were not deleted: %+v", st)
	}
	if _, err := os.Stat(CheckpointPath(dir)); err != nil {
		t.Fatalf("no checkpoint: %v", err)
	}
	if st := s.Stats(); st.State != StateOK || st.Backlog != 0 {
		t.Fatalf("stats after catching up: %+v", st)
	}
}

// TestRefusedPointIsQuarantined: one point InfluxDB refuses, in a batch
// of good ones, goes to the quarantine with InfluxDB's reason; the others
// are written.
func TestRefusedPointIsQuarantined(t *testing.T) {
	url := influxURL(t)
	l := openLog(t, t.TempDir())
	m := fmt.Sprintf("refused_%d", time.Now().UnixNano())
	now := time.Now().Add(-time.Minute)
	appendLines(t, l, m, 0, 100, now)
	bad := fmt.Sprintf("%s,station=s99 n=\"text where an integer was\" %d\n", m, now.Add(-time.Second).UnixNano())
	l.Append([]byte(bad), func(err error) {})
	appendLines(t, l, m, 100, 100, now)
	q := &quarantine{}
	s := New(Options{URL: url, Org: "-", Bucket: "city/autogen", FlushInterval: 100 * time.Millisecond}, l, q, quiet(), prometheus.NewRegistry())
	stop := run(s)
	testkit.WaitFor(t, 15*time.Second, func() bool { return len(q.got()) == 1 && countPoints(t, url, m) == 200 })
	stop()
	got := q.got()[0]
	if !strings.HasPrefix(got, strings.TrimSpace(bad)) || !strings.Contains(got, "field type conflict") {
		t.Fatalf("quarantined %q", got)
	}
}

// standIn is an InfluxDB stand-in that counts the points it accepts,
// after answering the first busy requests 503 with Retry-After.
func standIn(busy int32, calls, accepted *atomic.Int32) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= busy {
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
}

// TestRetriesUntilAccepted uses a stand-in for InfluxDB that is overloaded
// at first: the batch stays in the log and arrives whole once it recovers.
func TestRetriesUntilAccepted(t *testing.T) {
	var calls, accepted atomic.Int32
	srv := standIn(2, &calls, &accepted)
	defer srv.Close()
	l := openLog(t, t.TempDir())
	s := New(Options{URL: srv.URL, Org: "-", Bucket: "city/autogen", FlushInterval: 20 * time.Millisecond}, l, &quarantine{}, quiet(), prometheus.NewRegistry())
	stop := run(s)
	defer stop()
	appendLines(t, l, "m", 0, 10, time.Now())
	testkit.WaitFor(t, 15*time.Second, func() bool { return calls.Load() >= 1 })
	testkit.WaitFor(t, 15*time.Second, func() bool { return s.Stats().State == StateRetrying })
	if err := s.Ready(context.Background()); err == nil {
		t.Fatal("ready while writes fail")
	}
	testkit.WaitFor(t, 15*time.Second, func() bool { return accepted.Load() == 10 })
	if got := testutil.ToFloat64(s.failures.WithLabelValues("true")); got != 2 {
		t.Fatalf("retried failures = %v, want 2", got)
	}
	testkit.WaitFor(t, 15*time.Second, func() bool { return s.Stats().State == StateOK })
}

// TestResumesFromCheckpoint: a restarted forwarder does not send again
// what it had written.
func TestResumesFromCheckpoint(t *testing.T) {
	var calls, accepted atomic.Int32
	srv := standIn(0, &calls, &accepted)
	defer srv.Close()
	dir := t.TempDir()
	l := openLog(t, dir)
	opts := Options{URL: srv.URL, Org: "-", Bucket: "b", FlushInterval: 20 * time.Millisecond, Checkpoint: CheckpointPath(filepath.Clean(dir))}
	s := New(opts, l, &quarantine{}, quiet(), prometheus.NewRegistry())
	stop := run(s)
	appendLines(t, l, "m", 0, 50, time.Now())
	testkit.WaitFor(t, 15*time.Second, func() bool { return accepted.Load() >= 50 })
	stop()
	before := accepted.Load()

	s = New(opts, l, &quarantine{}, quiet(), prometheus.NewRegistry())
	stop = run(s)
	defer stop()
	appendLines(t, l, "m", 50, 5, time.Now())
	testkit.WaitFor(t, 15*time.Second, func() bool { return accepted.Load() >= before+5 })
	time.Sleep(100 * time.Millisecond)
	if got := accepted.Load() - before; got != 5 {
		t.Fatalf("after a restart %d points were sent, want the 5 new ones", got)
	}
}
