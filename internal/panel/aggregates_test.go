package panel

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// request is a hotline request: its district and channel as tags, its
// response time and whether it was resolved as fields.
func request(t time.Time, district, channel string, response float64, resolved bool) feed.Point {
	rv, _ := lineprotocol.FloatValue(response)
	return feed.Point{
		Measurement: "citizen_request",
		Tags:        []feed.Tag{{Key: "channel", Value: channel}, {Key: "district", Value: district}},
		Fields:      []feed.Field{{Key: "response_min", Value: rv}, {Key: "resolved", Value: lineprotocol.BoolValue(resolved)}},
		Time:        t,
	}
}

func value(t *testing.T, v View) float64 {
	t.Helper()
	if v.Value == nil {
		t.Fatalf("panel %s has no value (%s)", v.ID, v.Status)
	}
	return *v.Value
}

func TestRateDistinctRatio(t *testing.T) {
	e, clock, _ := newEngine(t,
		Spec{ID: "rate", Feed: "req", Agg: AggRate, Window: 10 * time.Minute},
		Spec{ID: "rate-s", Feed: "req", Agg: AggRate, Per: time.Second, Window: 10 * time.Minute},
		Spec{ID: "districts", Feed: "req", Agg: AggDistinct, Tag: "district", Window: 10 * time.Minute},
		Spec{ID: "resolved", Feed: "req", Agg: AggRatio, Where: map[string]string{"resolved": "true"}, Window: 10 * time.Minute},
		Spec{ID: "online", Feed: "req", Agg: AggRatio, Where: map[string]string{"channel": "eicecity"}, Filter: map[string]string{"district": "daoli"}, Window: 10 * time.Minute},
	)
	var pts []feed.Point
	for i := 0; i < 300; i++ { // 300 requests in the last 10 minutes
		d := []string{"daoli", "nangang", "songbei"}[i%3]
		ch := "12345"
		if i%4 == 0 {
			ch = "eicecity"
		}
		pts = append(pts, request(clock.Now().Add(-time.Duration(i)*time.Second), d, ch, 10, i%10 != 0))
	}
	e.Observe("req", pts)
	views := map[string]View{}
	vs, _ := e.Views("s")
	for _, v := range vs {
		views[v.ID] = v
	}
	for id, want := range map[string]float64{
		"rate": 30, "rate-s": 0.5, "districts": 3, "resolved": 90,
		"online": 100 * 25 / 100.0, // daoli is every third request: i%3==0; of those, i%4==0 is i%12==0
	} {
		if got := value(t, views[id]); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", id, got, want)
		}
	}
	if views["rate"].Unit != "/min" || views["rate-s"].Unit != "/s" || views["resolved"].Unit != "%" {
		t.Errorf("units %q %q %q", views["rate"].Unit, views["rate-s"].Unit, views["resolved"].Unit)
	}
	// Ten minutes on, the districts are forgotten with their readings.
	clock.Add(11 * time.Minute)
	if v := viewOf(t, e, "districts"); v.Value != nil {
		t.Errorf("distinct after the window: %v", *v.Value)
	}
}

// TestPercentiles: p50..p99 from the merged sketches of the window's
// buckets, within DDSketch's 1% relative error of the exact values.
func TestPercentiles(t *testing.T) {
	aggs := []string{AggP50, AggP90, AggP95, AggP99}
	var specs []Spec
	for _, a := range aggs {
		specs = append(specs, Spec{ID: a, Feed: "req", Field: "response_min", Agg: a, Window: time.Hour})
	}
	e, clock, _ := newEngine(t, specs...)
	var xs []float64
	var pts []feed.Point
	for i := 0; i < 5000; i++ {
		x := 0.5 + math.Mod(float64(i)*7.31, 240) // response times from 0.5 to 240 minutes
		xs = append(xs, x)
		pts = append(pts, request(clock.Now().Add(-time.Duration(i)*600*time.Millisecond), "daoli", "12345", x, true))
	}
	e.Observe("req", pts)
	sort.Float64s(xs)
	for _, a := range aggs {
		q := quantiles[a]
		exact := xs[int(math.Ceil(q*float64(len(xs))))-1]
		got := value(t, viewOf(t, e, a))
		if math.Abs(got-exact)/exact > 0.02 { // 1% of the sketch, and the rank's rounding
			t.Errorf("%s = %v, exact %v", a, got, exact)
		}
	}
}

func TestTopGroups(t *testing.T) {
	e, clock, _ := newEngine(t, Spec{ID: "top", Feed: "req", Agg: AggCount, GroupBy: []string{"district"}, Top: 2, Window: time.Hour})
	var pts []feed.Point
	for d, n := range map[string]int{"daoli": 5, "nangang": 9, "songbei": 2, "hulan": 7} {
		for i := 0; i < n; i++ {
			pts = append(pts, request(clock.Now().Add(-time.Minute), d, "12345", 1, true))
		}
	}
	e.Observe("req", pts)
	v := viewOf(t, e, "top")
	var got []string
	for _, g := range v.Groups {
		got = append(got, fmt.Sprintf("%s=%v", g.Tags["district"], g.Value))
	}
	if strings.Join(got, " ") != "nangang=9 hulan=7" {
		t.Fatalf("top 2: %v", got)
	}
}

// TestCalendarDay: "today" counts from local midnight in Asia/Shanghai
// (16:00 UTC) and starts afresh at the next one.
func TestCalendarDay(t *testing.T) {
	e, clock, _ := newEngine(t,
		Spec{ID: "today", Feed: "req", Agg: AggCount, Calendar: CalendarDay},
		Spec{ID: "week", Feed: "req", Agg: AggCount, Calendar: CalendarWeek},
		Spec{ID: "hour", Feed: "req", Agg: AggRate, Calendar: CalendarHour},
	)
	// 2026-11-27 is a Friday; 08:00 UTC is 16:00 in Harbin.
	e.Observe("req", []feed.Point{
		request(time.Date(2026, 11, 26, 15, 59, 0, 0, time.UTC), "daoli", "12345", 1, true), // Thursday 23:59 local
		request(time.Date(2026, 11, 26, 16, 1, 0, 0, time.UTC), "daoli", "12345", 1, true),  // Friday 00:01 local
		request(time.Date(2026, 11, 27, 7, 30, 0, 0, time.UTC), "daoli", "12345", 1, true),  // Friday 15:30 local
		request(time.Date(2026, 11, 27, 7, 50, 0, 0, time.UTC), "daoli", "12345", 1, true),
	})
	if got := value(t, viewOf(t, e, "today")); got != 3 {
		t.Errorf("today = %v, want the 3 since local midnight", got)
	}
	// This hour (from 16:00 local) holds none of them; one comes now.
	e.Observe("req", []feed.Point{request(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), "daoli", "12345", 1, true)})
	clock.Add(30 * time.Minute)
	if got, want := value(t, viewOf(t, e, "hour")), 1.0/30; math.Abs(got-want) > 1e-9 {
		t.Errorf("this hour's rate = %v per minute, want %v", got, want)
	}
	if got := value(t, viewOf(t, e, "week")); got != 5 {
		t.Errorf("this week (from Monday) = %v, want 5", got)
	}
	if v := viewOf(t, e, "today"); v.Window != "today" || v.Calendar != CalendarDay {
		t.Errorf("label %q %q", v.Window, v.Calendar)
	}
	// Past local midnight the day starts afresh; the week goes on.
	clock.Add(8 * time.Hour) // 00:30 Saturday local
	if v := viewOf(t, e, "today"); v.Value != nil || v.Previous == nil || *v.Previous != 4 {
		t.Errorf("today after midnight = %v, yesterday %v; want nothing yet, and Friday's 4", v.Value, v.Previous)
	}
	if got := value(t, viewOf(t, e, "week")); got != 5 {
		t.Errorf("the week after midnight = %v", got)
	}
}

func TestNewAggregateValidation(t *testing.T) {
	feeds := map[string]feed.Spec{"req": {ID: "req", Topic: "h/{district}/{channel}", Format: feed.FormatJSON,
		Fields: map[string]feed.FieldSpec{"response_min": {Type: feed.TypeFloat}, "resolved": {Type: feed.TypeBool}}}}
	s := ScreenSpec{ID: "s", TimeZone: "Mars/Olympus", Panels: []Spec{
		{ID: "a", Feed: "req", Agg: AggRatio},
		{ID: "b", Feed: "req", Agg: AggP95, Field: "resolved"},
		{ID: "c", Feed: "req", Agg: AggDistinct},
		{ID: "d", Feed: "req", Agg: AggCount, Calendar: "fortnight"},
		{ID: "e", Feed: "req", Agg: AggCount, Top: 3},
		{ID: "f", Feed: "req", Agg: AggRate, Per: 2 * time.Minute},
		{ID: "g", Feed: "req", Agg: AggCount, Calendar: CalendarDay, Window: time.Hour},
	}}.WithDefaults()
	var got []string
	for _, p := range s.Validate(feeds) {
		got = append(got, p.Key)
	}
	want := []string{"time_zone", "panels.0.where", "panels.1.field", "panels.2.tag", "panels.3.calendar", "panels.4.top", "panels.5.per", "panels.6.window"}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("no problem at %s; got %v", w, got)
		}
	}
}

// TestTrend: a panel's history is its aggregate over each step, readings
// before the window included, and only full steps plus the current one.
func TestTrend(t *testing.T) {
	e, clock, sink := newEngine(t, Spec{ID: "n", Feed: "req", Agg: AggCount, Window: 5 * time.Minute,
		History: &HistorySpec{Span: time.Hour, Step: 10 * time.Minute}})
	// start is 08:00 UTC; readings 4, 15, 15, 25, 25, 25 and 70 minutes ago.
	var pts []feed.Point
	for _, ago := range []int{4, 15, 15, 25, 25, 25, 70} {
		pts = append(pts, request(clock.Now().Add(-time.Duration(ago)*time.Minute), "daoli", "12345", 1, true))
	}
	e.Observe("req", pts)
	v := viewOf(t, e, "n")
	var got []string
	for _, h := range v.History {
		got = append(got, fmt.Sprintf("%s=%v", h.T.Format("15:04"), h.V))
	}
	// The 70-minute-old one is past the span; the current step (08:00) is empty.
	if strings.Join(got, " ") != "07:30=3 07:40=2 07:50=1" {
		t.Fatalf("trend %v", got)
	}
	if value(t, v) != 1 {
		t.Fatalf("the 5-minute window holds %v", *v.Value)
	}
	// Updates carry the trend when a step begins, not in between.
	e.PublishAll()
	if vs := sink.take(); len(vs) != 1 || vs[0].History == nil {
		t.Fatalf("first publication: %+v", vs)
	}
	clock.Add(time.Minute)
	e.Observe("req", []feed.Point{request(clock.Now(), "daoli", "12345", 1, true)})
	e.PublishAll()
	if vs := sink.take(); len(vs) != 1 || vs[0].History != nil || vs[0].HistoryNow == nil ||
		vs[0].HistoryNow.T.Format("15:04") != "08:00" || vs[0].HistoryNow.V != 1 {
		t.Fatalf("within a step the update has no trend, only its step in progress (08:00=1): %+v", vs)
	}
	clock.Add(10 * time.Minute)
	e.Observe("req", []feed.Point{request(clock.Now(), "daoli", "12345", 1, true)})
	e.PublishAll()
	if vs := sink.take(); len(vs) != 1 || len(vs[0].History) != 5 || vs[0].HistoryNow != nil {
		t.Fatalf("a new step: %+v", vs)
	}
}
