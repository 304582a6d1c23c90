package panel

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingSink stands for a hub: take returns what was published, and
// sent what reached each turn's clients at their turns.
type recordingSink struct {
	mu      sync.Mutex
	views   []View
	pending [Turns][]View
	sent    [Turns][]View
}

func (s *recordingSink) Publish(screen string, views []View) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.views = append(s.views, views...)
	for t := range s.pending {
		s.pending[t] = append(s.pending[t], views...)
	}
}

func (s *recordingSink) Turn(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.pending {
		if i < 0 || t == i {
			s.sent[t] = append(s.sent[t], s.pending[t]...)
			s.pending[t] = nil
		}
	}
}

// take returns the views published since the last call.
func (s *recordingSink) take() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.views
	s.views = nil
	return out
}

var start = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func fl(x float64) *float64 { return &x }

func point(t time.Time, district string, pm25 float64) feed.Point {
	v, _ := lineprotocol.FloatValue(pm25)
	return feed.Point{
		Measurement: "air_quality",
		Tags:        []feed.Tag{{Key: "district", Value: district}},
		Fields:      []feed.Field{{Key: "pm25", Value: v}},
		Time:        t,
	}
}

func newEngine(t *testing.T, panels ...Spec) (*Engine, *fakeClock, *recordingSink) {
	t.Helper()
	clock := &fakeClock{t: start}
	sink := &recordingSink{}
	e := New([]ScreenSpec{{ID: "s", Panels: panels}}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)),
		prometheus.NewRegistry(), Options{Now: clock.Now, Units: map[string]map[string]feed.Text{"air": {"pm25": feed.PlainText("µg/m³")}}})
	return e, clock, sink
}

func viewOf(t *testing.T, e *Engine, id string) View {
	t.Helper()
	views, ok := e.Views("s")
	if !ok {
		t.Fatal("no screen s")
	}
	for _, v := range views {
		if v.ID == id {
			return v
		}
	}
	t.Fatalf("no panel %s", id)
	return View{}
}

func TestAggregates(t *testing.T) {
	var specs []Spec
	for _, agg := range []string{AggCount, AggSum, AggMean, AggMin, AggMax, AggLast} {
		specs = append(specs, Spec{ID: agg, Feed: "air", Field: "pm25", Agg: agg, Window: time.Minute})
	}
	e, clock, _ := newEngine(t, specs...)
	for _, id := range []string{AggCount, AggMean} {
		if v := viewOf(t, e, id); v.Status != StatusNoData || v.Value != nil || v.Updated != nil {
			t.Fatalf("empty panel %s = %+v", id, v)
		}
	}
	// Out of order on purpose: last is the newest by time, not by arrival.
	e.Observe("air", []feed.Point{
		point(start.Add(-10*time.Second), "daoli", 30),
		point(start.Add(-2*time.Second), "daoli", 10),
		point(start.Add(-5*time.Second), "nangang", 50),
		point(start.Add(-2*time.Minute), "nangang", 999), // before the window
	})
	e.Observe("other-feed", []feed.Point{point(start, "daoli", 1000)})
	want := map[string]float64{AggCount: 3, AggSum: 90, AggMean: 30, AggMin: 10, AggMax: 50, AggLast: 10}
	for id, x := range want {
		v := viewOf(t, e, id)
		if v.Value == nil || *v.Value != x || v.Status != StatusOK {
			t.Errorf("%s = %+v, want %v ok", id, v, x)
		}
		if v.Updated == nil || !v.Updated.Equal(start.Add(-2*time.Second)) {
			t.Errorf("%s updated = %v", id, v.Updated)
		}
	}
	if v := viewOf(t, e, AggMean); v.Unit != "µg/m³" || v.Window != "1m" {
		t.Errorf("unit %q window %q", v.Unit, v.Window)
	}
	// The window slides: 55 s later only the -2 s reading is left.
	clock.Add(55 * time.Second)
	if v := viewOf(t, e, AggSum); v.Value == nil || *v.Value != 10 {
		t.Errorf("after 55s sum = %+v, want 10", v.Value)
	}
	clock.Add(10 * time.Second)
	if v := viewOf(t, e, AggSum); v.Value != nil || v.Status != StatusNoData {
		t.Errorf("after the window sum = %+v", v)
	}
}

func TestThresholdsAndStale(t *testing.T) {
	e, clock, _ := newEngine(t, Spec{ID: "p", Feed: "air", Field: "pm25", Agg: AggLast, Window: 10 * time.Minute,
		StaleAfter: time.Minute, Thresholds: &Thresholds{Warn: fl(75), Crit: fl(115)}})
	for _, c := range []struct {
		x    float64
		want Status
	}{{10, StatusOK}, {75, StatusWarn}, {114.9, StatusWarn}, {115, StatusCrit}, {20, StatusOK}} {
		clock.Add(time.Second)
		e.Observe("air", []feed.Point{point(clock.Now(), "daoli", c.x)})
		if v := viewOf(t, e, "p"); v.Status != c.want {
			t.Errorf("value %v: status %s, want %s", c.x, v.Status, c.want)
		}
	}
	clock.Add(61 * time.Second)
	if v := viewOf(t, e, "p"); v.Status != StatusStale || v.Value == nil || *v.Value != 20 {
		t.Errorf("silent feed: %+v, want stale with the last value", v)
	}
}

func TestGroups(t *testing.T) {
	e, clock, _ := newEngine(t, Spec{ID: "g", Feed: "air", Field: "pm25", Agg: AggMean, Window: time.Minute,
		GroupBy: []string{"district"}, StaleAfter: 30 * time.Second, Thresholds: &Thresholds{Warn: fl(75)}, MaxGroups: 2})
	e.Observe("air", []feed.Point{
		point(start, "nangang", 80), point(start, "nangang", 100),
		point(start, "daoli", 20),
		point(start, "songbei", 5), // a third group: over max_groups
	})
	v := viewOf(t, e, "g")
	if v.Value != nil || len(v.Groups) != 2 || v.Status != StatusWarn {
		t.Fatalf("view = %+v", v)
	}
	if g := v.Groups[0]; g.Tags["district"] != "daoli" || g.Value != 20 || g.Status != StatusOK {
		t.Errorf("group 0 = %+v", g)
	}
	if g := v.Groups[1]; g.Tags["district"] != "nangang" || g.Value != 90 || g.Status != StatusWarn {
		t.Errorf("group 1 = %+v", g)
	}
	clock.Add(20 * time.Second)
	e.Observe("air", []feed.Point{point(clock.Now(), "daoli", 30)})
	clock.Add(15 * time.Second)
	// nangang went quiet 35 s ago: stale; daoli is live and ok.
	v = viewOf(t, e, "g")
	if v.Status != StatusOK || v.Groups[1].Status != StatusStale || v.Groups[0].Status != StatusOK {
		t.Errorf("view = %+v", v)
	}
	clock.Add(time.Minute)
	if v := viewOf(t, e, "g"); v.Status != StatusNoData || len(v.Groups) != 0 {
		t.Errorf("after the window: %+v", v)
	}
	// Forgotten groups free their place for new ones.
	e.Observe("air", []feed.Point{point(clock.Now(), "songbei", 5)})
	if v := viewOf(t, e, "g"); len(v.Groups) != 1 || v.Groups[0].Tags["district"] != "songbei" {
		t.Errorf("new group not tracked: %+v", v)
	}
}

func TestCountWithoutField(t *testing.T) {
	e, _, _ := newEngine(t, Spec{ID: "c", Feed: "air", Agg: AggCount, Window: time.Minute})
	e.Observe("air", []feed.Point{point(start, "a", 1), point(start, "b", 2)})
	if v := viewOf(t, e, "c"); v.Value == nil || *v.Value != 2 {
		t.Fatalf("count = %+v", v)
	}
}

func TestPublishOnlyChanges(t *testing.T) {
	e, clock, sink := newEngine(t,
		Spec{ID: "a", Feed: "air", Field: "pm25", Agg: AggMax, Window: time.Minute},
		Spec{ID: "b", Feed: "other", Field: "x", Agg: AggMax, Window: time.Minute})
	e.publish(clock.Now(), true)
	if got := sink.take(); len(got) != 2 {
		t.Fatalf("first publication has %d panels, want both", len(got))
	}
	e.publish(clock.Now(), true)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("nothing changed but %d panels were published", len(got))
	}
	e.Observe("air", []feed.Point{point(clock.Now(), "a", 7)})
	e.publish(clock.Now(), false)
	got := sink.take()
	if len(got) != 1 || got[0].ID != "a" || *got[0].Value != 7 {
		t.Fatalf("published %+v, want only a=7", got)
	}
	// Time alone changes a panel: its reading leaves the window.
	clock.Add(2 * time.Minute)
	e.publish(clock.Now(), false)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("a coalescing tick recomputed clean panels: %+v", got)
	}
	e.publish(clock.Now(), true)
	if got := sink.take(); len(got) != 1 || got[0].Status != StatusNoData {
		t.Fatalf("re-evaluation published %+v, want a as nodata", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s", 90 * time.Second: "1m30s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	clock := &fakeClock{t: start}
	e := New([]ScreenSpec{{ID: "s", Panels: []Spec{
		{ID: "mean", Feed: "air", Field: "pm25", Agg: AggMean, Window: 5 * time.Minute, GroupBy: []string{"district"}},
		{ID: "max", Feed: "air", Field: "pm25", Agg: AggMax, Window: 5 * time.Minute},
	}}}, &recordingSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Options{Now: clock.Now})
	districts := []string{"daoli", "nangang", "daowai", "xiangfang", "pingfang", "songbei", "hulan", "acheng", "shuangcheng"}
	pts := make([][]feed.Point, len(districts))
	for i, d := range districts {
		pts[i] = []feed.Point{point(start, d, float64(i))}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Observe("air", pts[i%len(pts)])
	}
}

// TestSetScreens: unchanged panels keep their values across a change of
// screens; changed and new ones start empty.
func TestSetScreens(t *testing.T) {
	keep := Spec{ID: "keep", Feed: "air", Field: "pm25", Agg: AggSum, Window: time.Minute}
	alter := Spec{ID: "alter", Feed: "air", Field: "pm25", Agg: AggSum, Window: time.Minute}
	e, _, _ := newEngine(t, keep, alter)
	e.Observe("air", []feed.Point{point(start, "daoli", 5)})

	alter.Agg = AggMax
	added, changed, removed := e.SetScreens([]ScreenSpec{
		{ID: "s", Panels: []Spec{keep, alter, {ID: "new", Feed: "air", Agg: AggCount}}},
		{ID: "other", Panels: []Spec{{ID: "x", Feed: "air", Agg: AggCount}}},
	}, map[string]map[string]feed.Text{"air": {"pm25": feed.PlainText("µg/m³")}})
	if len(added) != 1 || added[0] != "other" || len(changed) != 1 || changed[0] != "s" || len(removed) != 0 {
		t.Fatalf("added %v changed %v removed %v", added, changed, removed)
	}
	if v := viewOf(t, e, "keep"); v.Value == nil || *v.Value != 5 {
		t.Errorf("unchanged panel lost its value: %+v", v)
	}
	if v := viewOf(t, e, "alter"); v.Value != nil || v.Agg != AggMax {
		t.Errorf("changed panel kept old state: %+v", v)
	}
	e.Observe("air", []feed.Point{point(start, "daoli", 7)})
	if v := viewOf(t, e, "new"); v.Value == nil || *v.Value != 1 {
		t.Errorf("new panel: %+v", v)
	}
	_, _, removed = e.SetScreens([]ScreenSpec{{ID: "other", Panels: []Spec{{ID: "x", Feed: "air", Agg: AggCount}}}}, nil)
	if len(removed) != 1 || removed[0] != "s" {
		t.Fatalf("removed %v", removed)
	}
	if _, ok := e.Views("s"); ok {
		t.Fatal("a removed screen still has views")
	}
}

// The coalescing tests run in a synctest bubble: the ticker and sleeps
// are on its clock, and synctest.Wait returns once the engine has done
// all it will do until the clock moves, so "nothing was sent" is known,
// not waited out.

// sentIDs is, for each turn, the panels its clients were sent since the last
// call, nil for none.
func (s *recordingSink) sentIDs() [Turns]map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [Turns]map[string]bool
	for t, vs := range s.sent {
		for _, v := range vs {
			if out[t] == nil {
				out[t] = map[string]bool{}
			}
			out[t][v.ID] = true
		}
		s.sent[t] = nil
	}
	return out
}

// ids is the panels every turn's clients were sent since the last call,
// nil for none; it fails the test if the turns were sent different ones.
func ids(t *testing.T, sink *recordingSink) map[string]bool {
	t.Helper()
	got := sink.sentIDs()
	for i := range got {
		if !maps.Equal(got[i], got[0]) {
			t.Fatalf("turns were sent different panels: %v", got)
		}
	}
	return got[0]
}

// runEngine runs e until the test ends, and returns observe, which gives
// it a reading of a feed now and waits for what follows at once.
func runEngine(t *testing.T, e *Engine) (observe func(feedID string)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return func(feedID string) {
		e.Observe(feedID, []feed.Point{point(time.Now(), "daoli", 1)})
		synctest.Wait()
	}
}

// TestQuietScreenSendsAtOnce: after a quiet spell a reading is sent without
// waiting for the coalescing interval.
func TestQuietScreenSendsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &recordingSink{}
		e := New([]ScreenSpec{{ID: "s", Panels: []Spec{{ID: "n", Feed: "air", Agg: AggCount, Window: time.Hour}}}}, sink,
			slog.New(slog.DiscardHandler), nil, Options{Coalesce: time.Hour, Reevaluate: time.Hour})
		observe := runEngine(t, e)
		observe("air")
		if got := ids(t, sink); !got["n"] {
			t.Fatalf("sent %v at once, want the panel", got)
		}
	})
}

// TestQuietPanelSendsAtOnce: the leading edge is per panel. A panel quiet
// for longer than the interval goes out as soon as it changes although
// its screen sent a frame a moment ago, and the screen's other changes go
// with it in one frame, to every turn's clients; a panel that changes
// again within the interval waits for each client's turn.
func TestQuietPanelSendsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		sink := &recordingSink{}
		e := New([]ScreenSpec{{ID: "s", Panels: []Spec{
			{ID: "air", Feed: "air", Agg: AggCount, Window: 3 * time.Hour},
			{ID: "traffic", Feed: "traffic", Agg: AggCount, Window: 3 * time.Hour},
		}}}, sink, slog.New(slog.DiscardHandler), nil, Options{Coalesce: interval, Reevaluate: time.Hour})
		observe := runEngine(t, e) // ticks at 25, 50, ... ms from now, a turn each
		observe("air")
		if got := ids(t, sink); !got["air"] || !got["traffic"] {
			t.Fatalf("sent %v, want both panels' first views", got)
		}
		time.Sleep(time.Second + 10*time.Millisecond) // both quiet, 10 ms past a tick
		synctest.Wait()
		if got := ids(t, sink); got != nil {
			t.Fatalf("sent %v with nothing changed", got)
		}
		observe("air")
		if got := ids(t, sink); !got["air"] || got["traffic"] {
			t.Fatalf("sent %v for a quiet panel's reading, want the air panel", got)
		}
		time.Sleep(10 * time.Millisecond)
		observe("air") // within the interval: waits
		if got := ids(t, sink); got != nil {
			t.Fatalf("sent %v for a busy panel's reading, want it held for the ticker", got)
		}
		observe("traffic") // quiet: goes at once, and air's change with it
		if got := ids(t, sink); !got["traffic"] || !got["air"] {
			t.Fatalf("sent %v, want the traffic panel with the air panel's change in the same frame", got)
		}
		// After the lead, a turn every quarter interval: the air panel's
		// change reaches each turn's clients once, at its turn, so none
		// waits longer than the interval and none is sent two frames in
		// a quarter interval.
		time.Sleep(10 * time.Millisecond)
		observe("air")
		time.Sleep(10 * time.Millisecond) // 5 ms short of the first turn
		got := map[int]bool{}
		for q := 1; q <= Turns; q++ {
			synctest.Wait()
			if sent := ids(t, sink); sent != nil {
				t.Fatalf("quarter %d: sent %v before the turn", q, sent)
			}
			time.Sleep(5 * time.Millisecond)
			synctest.Wait()
			sent := sink.sentIDs()
			for i := range sent {
				if sent[i] == nil {
					continue
				}
				if !sent[i]["air"] || sent[i]["traffic"] || got[i] {
					t.Fatalf("quarter %d: turn %d sent %v, having been sent the air panel already: %v", q, i, sent[i], got[i])
				}
				got[i] = true
			}
			if len(got) != q {
				t.Fatalf("quarter %d: %d turns sent the air panel, want %d", q, len(got), q)
			}
			time.Sleep(interval/Turns - 5*time.Millisecond)
		}
		time.Sleep(2 * interval)
		synctest.Wait()
		if sent := ids(t, sink); sent != nil {
			t.Fatalf("sent %v with nothing changed", sent)
		}
	})
}

// TestLeadingEdgeTakesEveryScreen: when a quiet panel's change goes out at
// once, every screen's other changes go with it, not at the next tick as
// frames of their own.
func TestLeadingEdgeTakesEveryScreen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &recordingSink{}
		e := New([]ScreenSpec{
			{ID: "air", Panels: []Spec{{ID: "air", Feed: "air", Agg: AggCount, Window: 3 * time.Hour}}},
			{ID: "traffic", Panels: []Spec{{ID: "traffic", Feed: "traffic", Agg: AggCount, Window: 3 * time.Hour}}},
		}, sink, slog.New(slog.DiscardHandler), nil, Options{Coalesce: time.Hour, Reevaluate: 10 * time.Hour})
		observe := runEngine(t, e)
		observe("traffic")
		if got := ids(t, sink); !got["air"] || !got["traffic"] {
			t.Fatalf("sent %v, want both screens' first views", got)
		}
		time.Sleep(2*time.Hour + time.Minute) // both quiet
		synctest.Wait()
		sink.take() // the ticks' re-evaluation
		observe("traffic")
		if got := ids(t, sink); !got["traffic"] {
			t.Fatalf("sent %v, want the traffic panel", got)
		}
		time.Sleep(time.Second)
		observe("traffic") // busy now: waits
		if got := ids(t, sink); got != nil {
			t.Fatalf("sent %v, want the busy panel held", got)
		}
		observe("air") // quiet: goes at once, and traffic's change with it
		if got := ids(t, sink); !got["air"] || !got["traffic"] {
			t.Fatalf("sent %v, want the air panel and, from the other screen, the traffic panel", got)
		}
	})
}
