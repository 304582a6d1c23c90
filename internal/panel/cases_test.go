package panel

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

func TestCasePanelValidation(t *testing.T) {
	cs := &feed.CaseSpec{ID: "case", Status: "status", Closed: []string{"closed"}}
	feeds := map[string]feed.Spec{
		"req": {ID: "req", Topic: "h/{district}", Format: feed.FormatJSON, Cases: cs,
			Fields: map[string]feed.FieldSpec{"case": {Type: feed.TypeString}, "status": {Type: feed.TypeString}},
			Tags:   map[string]feed.TagSpec{"department": {}}},
		"air": {ID: "air", Topic: "a/{district}", Format: feed.FormatJSON, Fields: map[string]feed.FieldSpec{"pm25": {Type: feed.TypeFloat}}},
	}
	s := ScreenSpec{ID: "s", Panels: []Spec{
		{ID: "ok1", Feed: "req", Agg: AggOpen, GroupBy: []string{"district", "status", "department"}},
		{ID: "ok2", Feed: "req", Agg: AggDueSoon, Within: 2 * time.Hour},
		{ID: "ok3", Feed: "req", Agg: AggRatio, Filter: map[string]string{"status": "closed"}, Where: map[string]string{"on_time": "true"}},
		{ID: "ok4", Feed: "req", Agg: AggP50, Field: "close_min"},
		{ID: "a", Feed: "air", Agg: AggOverdue},
		{ID: "b", Feed: "req", Agg: AggDueSoon},
		{ID: "c", Feed: "req", Agg: AggOpen, Within: time.Hour},
		{ID: "d", Feed: "req", Agg: AggOpen, Field: "case"},
		{ID: "e", Feed: "req", Agg: AggOpen, GroupBy: []string{"channel"}},
		{ID: "f", Feed: "air", Agg: AggMean, Field: "close_min"},
		{ID: "g", Feed: "air", Agg: AggMean, Field: "pm25", Within: time.Hour},
	}}.WithDefaults()
	var got []string
	for _, p := range s.Validate(feeds) {
		got = append(got, p.Key)
	}
	want := []string{"panels.10.within", "panels.4.agg", "panels.5.within", "panels.6.within", "panels.7.field", "panels.8.group_by.0", "panels.9.field"}
	slices.Sort(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v", got, want)
	}
}

// TestCaseEventsOutOfOrder: a case's closing may reach the engine before
// its opening (the ingest workers decode in parallel). It waits for the
// opening, then both apply in their order; an event whose case never
// opens reaches the panels after pendingHold, refused.
func TestCaseEventsOutOfOrder(t *testing.T) {
	e, clock, _ := newEngine(t,
		Spec{ID: "open", Feed: "req", Agg: AggOpen},
		Spec{ID: "on-time", Feed: "req", Agg: AggRatio, Filter: map[string]string{"status": "closed"}, Where: map[string]string{"on_time": "true"}, Window: time.Hour},
		Spec{ID: "events", Feed: "req", Agg: AggCount, Window: time.Hour})
	e.SetCases(map[string]*feed.CaseSpec{"req": {ID: "case", Status: "status", Opening: []string{"received"}, Closed: []string{"closed"}}})
	event := func(id, status string, at time.Time) feed.Point {
		return feed.Point{Measurement: "m", Time: at, Tags: []feed.Tag{{Key: "district", Value: "daoli"}},
			Fields: []feed.Field{{Key: "case", Value: lineprotocol.MustNewValue(id)}, {Key: "status", Value: lineprotocol.MustNewValue(status)}}}
	}
	now := clock.Now()
	e.Observe("req", []feed.Point{event("A", "closed", now.Add(time.Minute))})
	if v := viewOf(t, e, "events"); v.Value != nil && *v.Value != 0 {
		t.Fatalf("the closing, before its opening, already counted: %v", *v.Value)
	}
	e.Observe("req", []feed.Point{event("A", "received", now)})
	e.Observe("req", []feed.Point{event("B", "dispatched", now)}) // never opened
	if v := viewOf(t, e, "open"); *v.Value != 0 {
		t.Errorf("open after the opening and the closing: %v", *v.Value)
	}
	if v := viewOf(t, e, "on-time"); v.Value == nil || *v.Value != 100 {
		t.Errorf("on-time: %v", v.Value)
	}
	if v := viewOf(t, e, "events"); *v.Value != 2 {
		t.Errorf("events counted: %v, want 2 (B still waits)", *v.Value)
	}
	clock.Add(pendingHold + time.Second)
	e.PublishAll()
	if v := viewOf(t, e, "events"); *v.Value != 3 {
		t.Errorf("events counted after the hold: %v, want 3", *v.Value)
	}
}

// BenchmarkCasePanels: one engine tick (the clock one second on, every
// panel recomputed) of four case panels (open by district, overdue by
// department with alerts, due within 2 h, the list of the 20 most
// overdue) over 10^4, 10^5 and 10^6 open cases, a third of them overdue. The
// cost follows the groups and the rows, not the open cases.
func BenchmarkCasePanels(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("open=%d", n), func(b *testing.B) {
			clock := &fakeClock{t: start}
			crit := 1.0
			e := New([]ScreenSpec{{ID: "s", Panels: []Spec{
				{ID: "open", Feed: "req", Agg: AggOpen, GroupBy: []string{"district"}},
				{ID: "overdue", Feed: "req", Agg: AggOverdue, GroupBy: []string{"department"}, Thresholds: &Thresholds{Crit: &crit}},
				{ID: "soon", Feed: "req", Agg: AggDueSoon, Within: 2 * time.Hour},
				{ID: "late", Feed: "req", Agg: AggOverdue, View: ViewList},
			}}}, &recordingSink{}, slog.New(slog.DiscardHandler), nil, Options{Now: clock.Now})
			e.SetCases(map[string]*feed.CaseSpec{"req": {ID: "case", Status: "status", Closed: []string{"closed"},
				Limits: []feed.CaseLimit{{Within: feed.Duration(72 * time.Hour)}}}})
			batch := make([]feed.Point, 0, 10_000)
			for i := range n {
				batch = append(batch, feed.Point{Measurement: "m", Time: start.Add(-time.Duration(i%(108*60)) * time.Minute),
					Tags:   []feed.Tag{{Key: "department", Value: fmt.Sprintf("dept-%02d", i%30)}, {Key: "district", Value: fmt.Sprintf("d%d", i%9)}},
					Fields: []feed.Field{{Key: "case", Value: lineprotocol.MustNewValue(fmt.Sprintf("HRB%010d", i))}, {Key: "status", Value: lineprotocol.MustNewValue("received")}}})
				if len(batch) == cap(batch) {
					e.Observe("req", batch)
					batch = batch[:0]
				}
			}
			e.Observe("req", batch)
			e.PublishAll()
			for b.Loop() {
				clock.Add(time.Second)
				e.PublishAll()
			}
		})
	}
}
