package panel

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// TestCaseBookKeptOnDisk: a case feed's book comes back in a new engine
// over the same directory, and the events read back from storage (Fill)
// count in the feed's other panels as they did when first applied: the
// closings on time or late, the reopening, each once. A duplicate
// delivered live counts nothing.
func TestCaseBookKeptOnDisk(t *testing.T) {
	dir := t.TempDir()
	panels := []Spec{
		{ID: "open", Feed: "req", Agg: AggOpen},
		{ID: "overdue", Feed: "req", Agg: AggOverdue},
		{ID: "on-time", Feed: "req", Agg: AggRatio, Filter: map[string]string{"status": "closed"}, Where: map[string]string{"on_time": "true"}, Window: time.Hour},
		{ID: "reopened", Feed: "req", Agg: AggRatio, Where: map[string]string{"reopened": "true"}, Window: time.Hour},
		{ID: "took", Feed: "req", Agg: AggMean, Field: "close_min", Window: time.Hour},
		{ID: "events", Feed: "req", Agg: AggCount, Window: time.Hour},
	}
	spec := &feed.CaseSpec{ID: "case", Status: "status", Opening: []string{"received"}, Closed: []string{"closed"},
		Limits: []feed.CaseLimit{{Within: feed.Duration(10 * time.Minute)}}}
	engine := func(clock *fakeClock) *Engine {
		e := New([]ScreenSpec{{ID: "s", Panels: panels}}, &recordingSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)),
			prometheus.NewRegistry(), Options{Now: clock.Now, CasesDir: dir})
		e.SetCases(map[string]*feed.CaseSpec{"req": spec})
		return e
	}
	clock := &fakeClock{t: start}
	now := clock.Now()
	event := func(id, status string, min int) feed.Point {
		return feed.Point{Measurement: "m", Time: now.Add(time.Duration(min) * time.Minute), Tags: []feed.Tag{{Key: "district", Value: "daoli"}},
			Fields: []feed.Field{{Key: "case", Value: lineprotocol.MustNewValue(id)}, {Key: "status", Value: lineprotocol.MustNewValue(status)}}}
	}
	stored := []feed.Point{ // as InfluxDB holds them: each event once
		event("A", "received", 0), event("B", "received", 1), event("C", "received", 2), event("D", "received", 3),
		event("A", "closed", 5),                            // on time
		event("B", "closed", 20),                           // late
		event("C", "closed", 6), event("C", "received", 7), // reopened
	}
	clock.t = now.Add(21 * time.Minute)
	a := engine(clock)
	a.Observe("req", stored)
	a.Observe("req", []feed.Point{event("B", "closed", 20)}) // delivered twice
	a.PublishAll()
	values := func(e *Engine) map[string]float64 {
		out := map[string]float64{}
		for _, p := range panels {
			if v := viewOf(t, e, p.ID).Value; v != nil {
				out[p.ID] = *v
			}
		}
		return out
	}
	want := values(a)
	if want["open"] != 2 || want["overdue"] != 2 || want["on-time"] != 200.0/3 || want["events"] != 8 || want["reopened"] != 12.5 {
		t.Fatalf("before the restart: %v", want)
	}
	a.CloseCases()

	b := engine(clock)
	if r := b.CaseRestored("req"); !r.Whole || r.Newest != now.Add(20*time.Minute) {
		t.Fatalf("restored: %+v", r)
	}
	b.Fill("req", stored)
	b.PublishAll()
	if got := values(b); len(got) != len(want) || got["open"] != want["open"] || got["overdue"] != want["overdue"] ||
		got["on-time"] != want["on-time"] || got["reopened"] != want["reopened"] || got["took"] != want["took"] || got["events"] != want["events"] {
		t.Fatalf("after the restart: %v, want %v", got, want)
	}
}
