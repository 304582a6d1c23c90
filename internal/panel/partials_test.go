package panel

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// partialSpecs are panels of every aggregate and window kind: sliding
// windows of whole and broken seconds, calendar hours, days and weeks,
// groups, a filter, a ratio, distinct values, percentiles, a trend and a
// map's positions.
func partialSpecs() []Spec {
	var specs []Spec
	for _, agg := range []string{AggCount, AggSum, AggMean, AggMin, AggMax, AggLast, AggRate, AggP50, AggP95, AggP99} {
		specs = append(specs,
			Spec{ID: agg, Feed: "air", Field: "pm25", Agg: agg, Window: time.Hour, History: &HistorySpec{Span: 2 * time.Hour, Step: 5 * time.Minute}},
			Spec{ID: agg + "-90s", Feed: "air", Field: "pm25", Agg: agg, Window: 90 * time.Second},
			Spec{ID: agg + "-by-district", Feed: "air", Field: "pm25", Agg: agg, GroupBy: []string{"district"}, Window: 10 * time.Minute})
		for _, cal := range []string{CalendarHour, CalendarDay, CalendarWeek} {
			specs = append(specs, Spec{ID: agg + "-" + cal, Feed: "air", Field: "pm25", Agg: agg, Calendar: cal})
		}
	}
	return append(specs,
		Spec{ID: "distinct", Feed: "air", Agg: AggDistinct, Tag: "district", Window: time.Hour},
		Spec{ID: "distinct-today", Feed: "air", Agg: AggDistinct, Tag: "district", Calendar: CalendarDay},
		Spec{ID: "ratio", Feed: "air", Agg: AggRatio, Where: map[string]string{"district": "daoli"}, Window: time.Hour},
		Spec{ID: "filtered", Feed: "air", Field: "pm25", Agg: AggSum, Filter: map[string]string{"district": "nangang"}, Window: time.Hour},
		Spec{ID: "top", Feed: "air", Field: "pm25", Agg: AggMax, GroupBy: []string{"district"}, Window: time.Hour, Top: 2})
}

func partialEngine(t *testing.T, clock *fakeClock) (*Engine, *recordingSink) {
	sink := &recordingSink{}
	e := New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)),
		prometheus.NewRegistry(), Options{Now: clock.Now})
	return e, sink
}

// TestPartialsEqualWholeStream: two shares of a stream collected as
// deltas and merged into one engine (through their wire form) give every
// panel the view, trend and rollups of an engine that took the whole
// stream, reading by reading. Values are whole numbers, so sums are exact
// in any order.
func TestPartialsEqualWholeStream(t *testing.T) {
	clock := &fakeClock{t: start}
	whole, _ := partialEngine(t, clock)
	merged, _ := partialEngine(t, clock)
	shares := []*Engine{New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now}),
		New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})}
	rng := rand.New(rand.NewPCG(3, 4))
	districts := []string{"daoli", "nangang", "daowai", "songbei", "xiangfang"}
	for step := range 240 { // two hours, 30 s at a time, across a calendar hour
		var batch []feed.Point
		for range 50 {
			at := clock.Now().Add(-time.Duration(rng.Int64N(int64(40 * time.Second)))) // some late
			batch = append(batch, point(at, districts[rng.IntN(len(districts))], float64(rng.IntN(500))))
		}
		whole.Observe("air", batch)
		for i := range batch { // each reading to one share, as a shared subscription does
			shares[rng.IntN(2)].Collect("air", batch[i:i+1])
		}
		var ds []Delta
		for _, sh := range shares {
			ds = append(ds, roundTrip(t, sh.TakeDeltas())...)
		}
		if left := merged.Merge(ds, false); left != 0 {
			t.Fatalf("%d deltas left out", left)
		}
		clock.Add(30 * time.Second)
		if step%40 == 39 {
			compareEngines(t, whole, merged, clock.Now())
		}
	}
	w, m := whole.Rollups(), merged.Rollups()
	if len(w) != len(m) || fmt.Sprint(rowsOf(w, "sum", "1m")) != fmt.Sprint(rowsOf(m, "sum", "1m")) ||
		fmt.Sprint(rowsOf(w, "p95", "1h")) != fmt.Sprint(rowsOf(m, "p95", "1h")) {
		t.Fatalf("rollups differ: %d and %d points", len(w), len(m))
	}
}

// roundTrip sends deltas through their wire form.
func roundTrip(t *testing.T, ds []Delta) []Delta {
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	var out []Delta
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func compareEngines(t *testing.T, whole, merged *Engine, now time.Time) {
	t.Helper()
	wv, _ := whole.Views("s")
	mv, _ := merged.Views("s")
	for i := range wv {
		a, _ := json.Marshal(wv[i])
		b, _ := json.Marshal(mv[i])
		if string(a) != string(b) {
			t.Errorf("at %s panel %s:\nwhole  %s\nmerged %s", now.Format(time.TimeOnly), wv[i].ID, a, b)
		}
	}
}

// A delta for a panel defined otherwise here is left out, not merged into
// the wrong numbers.
func TestPartialsOfAnotherDefinitionLeftOut(t *testing.T) {
	clock := &fakeClock{t: start}
	merged, _ := partialEngine(t, clock)
	other := New([]ScreenSpec{{ID: "s", Panels: []Spec{{ID: "sum", Feed: "air", Field: "pm25", Agg: AggSum, Window: time.Hour, Filter: map[string]string{"district": "daoli"}}}}},
		nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})
	other.Collect("air", []feed.Point{point(start, "daoli", 5)})
	if left := merged.Merge(other.TakeDeltas(), false); left != 1 {
		t.Fatalf("left out %d, want the one delta of another definition", left)
	}
}

// BenchmarkCollect and BenchmarkMerge: a share's readings into deltas, and
// the deltas into a screen's panels (every aggregate and window kind of
// partialSpecs, 5 districts), per reading and per delta. A delta holds a
// group's readings of one fine slot, so merging costs by groups and
// seconds, not by readings.
func BenchmarkCollect(b *testing.B) {
	clock := &fakeClock{t: start}
	e := New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})
	pts := make([]feed.Point, 1000)
	for i := range pts {
		pts[i] = point(start.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("d%d", i%5), float64(i%500))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Collect("air", pts[i%1000:i%1000+1])
		if i%1000 == 999 {
			e.TakeDeltas()
		}
	}
}

func BenchmarkMerge(b *testing.B) {
	clock := &fakeClock{t: start}
	share := New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})
	var pts []feed.Point
	for i := range 1000 { // one second of readings
		pts = append(pts, point(start.Add(-time.Second+time.Duration(i)*time.Millisecond), fmt.Sprintf("d%d", i%5), float64(i%500)))
	}
	share.Collect("air", pts)
	ds := share.TakeDeltas()
	screen := New([]ScreenSpec{{ID: "s", Panels: partialSpecs()}}, nil, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		screen.Merge(ds[i%len(ds):i%len(ds)+1], false)
	}
	b.ReportMetric(float64(len(ds)), "deltas/s-of-readings")
}
