package panel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// rowsOf reads rollup points back as a store would (a point written again
// with the same tags and time replaces the one before), keeping those of
// one panel at one resolution.
func rowsOf(points []feed.Point, panelID, res string) []RollupRow {
	var rows []RollupRow
	at := map[string]int{}
	for _, pt := range points {
		tags := map[string]string{}
		for _, t := range pt.Tags {
			tags[t.Key] = t.Value
		}
		if tags["panel"] != panelID || tags["res"] != res {
			continue
		}
		fields := map[string]any{}
		for _, f := range pt.Fields {
			switch f.Value.Kind() {
			case lineprotocol.Int:
				fields[f.Key] = f.Value.IntV()
			case lineprotocol.Float:
				fields[f.Key] = f.Value.FloatV()
			case lineprotocol.String:
				fields[f.Key] = f.Value.StringV()
			}
		}
		key := fmt.Sprint(pt.Tags, pt.Time.UnixNano())
		if i, ok := at[key]; ok {
			rows[i] = RollupRowOf(pt.Time, tags, fields)
			continue
		}
		at[key] = len(rows)
		rows = append(rows, RollupRowOf(pt.Time, tags, fields))
	}
	return rows
}

// TestHistoryAgreesWithLive: an hour of readings; each panel's history
// step over that hour, from its hourly rollups and from its minute ones,
// equals what the live panel with a one-hour window shows: exactly for
// count, min, max, last and distinct, within float rounding for sum, mean,
// ratio and rate (the same numbers added in another order), within the
// sketch's 1% for p95. A group's history equals its live group, and the
// panel's filter leaves out the same readings.
func TestHistoryAgreesWithLive(t *testing.T) {
	var specs []Spec
	for _, agg := range []string{AggCount, AggSum, AggMean, AggMin, AggMax, AggLast, AggRate, AggP95} {
		specs = append(specs, Spec{ID: agg, Feed: "air", Field: "pm25", Agg: agg, Window: time.Hour})
	}
	specs = append(specs,
		Spec{ID: "distinct", Feed: "air", Agg: AggDistinct, Tag: "district", Window: time.Hour},
		Spec{ID: "ratio", Feed: "air", Agg: AggRatio, Where: map[string]string{"district": "daoli"}, Window: time.Hour},
		Spec{ID: "filtered", Feed: "air", Field: "pm25", Agg: AggSum, Filter: map[string]string{"district": "nangang"}, Window: time.Hour},
		Spec{ID: "by-district", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"district"}, Window: time.Hour})
	e, clock, _ := newEngine(t, specs...)
	hour := start.Add(-time.Hour) // [07:00, 08:00)
	clock.t = start.Add(-time.Nanosecond)
	rng := rand.New(rand.NewPCG(1, 2))
	districts := []string{"daoli", "nangang", "daowai", "songbei"}
	var pts []feed.Point
	for i := range 3000 {
		at := hour.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		pts = append(pts, point(at, districts[i%len(districts)], math.Round(rng.Float64()*3000)/10))
	}
	pts = append(pts, point(hour.Add(-time.Minute), "daoli", 9999)) // before the hour
	// The readings arrive as they are taken, a minute at a time, and the
	// rollups are taken every minute, as the server does.
	slices.SortFunc(pts, func(a, b feed.Point) int { return a.Time.Compare(b.Time) })
	var rollups []feed.Point
	for m := hour.Add(-time.Minute); m.Before(start); m = m.Add(time.Minute) {
		clock.t = m.Add(time.Minute - time.Nanosecond)
		var batch []feed.Point
		for len(pts) > 0 && pts[0].Time.Before(m.Add(time.Minute)) {
			batch, pts = append(batch, pts[0]), pts[1:]
		}
		e.Observe("air", batch)
		rollups = append(rollups, e.Rollups()...)
	}
	if again := e.Rollups(); len(again) != 0 {
		t.Fatalf("%d rollups given twice", len(again))
	}
	// By day, the day's rollups give what the hours' and the minutes' do.
	for _, spec := range specs {
		ps, loc, _ := e.PanelOf("s", spec.ID)
		var days []string
		for _, res := range []string{"1d", "1h", "1m"} {
			hist, err := HistoryOf(ps, loc, 24*time.Hour, rowsOf(rollups, ps.ID, res))
			if err != nil || len(hist) == 0 {
				t.Fatalf("%s by day from %s rollups: %v %v", ps.ID, res, hist, err)
			}
			out := ""
			for _, h := range hist {
				for _, p := range h.Points {
					out += fmt.Sprintf("%v %v %.9g;", h.Tags, p.T, p.V)
				}
			}
			days = append(days, out)
		}
		if days[0] != days[1] || days[1] != days[2] {
			t.Errorf("%s by day: from days %s, hours %s, minutes %s", ps.ID, days[0], days[1], days[2])
		}
	}
	for _, spec := range specs {
		ps, loc, _ := e.PanelOf("s", spec.ID)
		live := viewOf(t, e, ps.ID)
		for _, res := range []string{"1h", "1m"} {
			hist, err := HistoryOf(ps, loc, time.Hour, rowsOf(rollups, ps.ID, res))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, s := range hist {
				for _, p := range s.Points {
					if p.T.Equal(hour) {
						got[fmt.Sprint(s.Tags)] = p.V
					}
				}
			}
			want := map[string]float64{}
			if live.Value != nil {
				want["map[]"] = *live.Value
			}
			for _, g := range live.Groups {
				want[fmt.Sprint(g.Tags)] = g.Value
			}
			if len(got) != len(want) || len(want) == 0 {
				t.Fatalf("%s from %s rollups: %v, live %v", ps.ID, res, got, want)
			}
			for k, w := range want {
				g := got[k]
				tol := 0.0
				switch ps.Agg {
				case AggSum, AggMean, AggRatio, AggRate:
					// The same numbers added in another order.
					tol = 1e-12 * math.Abs(w)
				case AggP95:
					tol = 0.01 * math.Abs(w)
				}
				if math.Abs(g-w) > tol {
					t.Errorf("%s %s from %s rollups: %v, live %v", ps.ID, k, res, g, w)
				}
			}
		}
	}
}

// TestHistoryRunsAndInstances: a restart's rollups of a minute add to the
// run's before it; two instances rolling up the same minute count once.
func TestHistoryRunsAndInstances(t *testing.T) {
	ps := Spec{ID: "sum", Feed: "air", Field: "pm25", Agg: AggSum, Window: time.Hour}
	m := start.Truncate(time.Hour)
	row := func(run string, at time.Time, n int64, sum float64) RollupRow {
		return RollupRow{Time: at, Run: run, Group: map[string]string{}, N: n, Sum: sum, Min: 1, Max: sum, Last: 1, LastT: at.UnixNano()}
	}
	rows := []RollupRow{
		row("a/1", m, 3, 30), row("a/2", m, 2, 20), // instance a, restarted within the minute
		row("b/1", m, 5, 50),                 // instance b, the same readings
		row("a/2", m.Add(time.Minute), 1, 7), // the next minute: a only
		row("b/1", m.Add(time.Minute), 1, 7),
	}
	hist, err := HistoryOf(ps, time.UTC, time.Hour, rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || len(hist[0].Points) != 1 || hist[0].Points[0].V != 57 {
		t.Fatalf("history %+v, want one step of 57", hist)
	}
}
