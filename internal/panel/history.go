package panel

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// A panel's history over any range: its rollups (rollup.go), read back
// from storage, merged into steps and aggregated as the live panel
// aggregates its window.

// RollupRow is one stored rollup as read back: a minute's or an hour's
// partial aggregates of one group of a panel.
type RollupRow struct {
	Time  time.Time
	Run   string            // "instance/start"
	Group map[string]string // the group's tags, without their "g_"
	N     int64
	Sum   float64
	Min   float64
	Max   float64
	Last  float64
	LastT int64
	Hits  float64
	// Sketch is a percentile panel's sketch (base64), Values a distinct
	// panel's values (a JSON array).
	Sketch, Values string
}

// HistorySeries is one group's history: its tags and one point per step
// that has readings, oldest first.
type HistorySeries struct {
	Tags   map[string]string `json:"tags"`
	Points []HistPoint       `json:"points"`
}

// PanelOf is a screen's panel as defined, with its screen's time zone.
func (e *Engine) PanelOf(screenID, panelID string) (Spec, *time.Location, bool) {
	for _, s := range e.layout.Load().screens {
		if s.spec.ID != screenID {
			continue
		}
		for _, p := range s.panels {
			if p.spec.ID == panelID {
				return p.spec, p.loc, true
			}
		}
	}
	return Spec{}, nil, false
}

// StepStart is the start of the step of length step that holds t: a day
// or a week (from Monday) in loc for steps of 24 h and 7 days, else a
// multiple of the step since the epoch.
func StepStart(t time.Time, step time.Duration, loc *time.Location) time.Time {
	switch step {
	case 24 * time.Hour:
		return time.Unix(0, periodStart(t.UnixNano(), CalendarDay, loc)).UTC()
	case 7 * 24 * time.Hour:
		return time.Unix(0, periodStart(t.UnixNano(), CalendarWeek, loc)).UTC()
	}
	return t.Truncate(step).UTC()
}

// partial is rollups merged: one run's, one instance's, or a step's.
type partial struct {
	b        bucket
	sketches []string
	values   map[string]bool
}

func (pa *partial) add(row *RollupRow) {
	b := &pa.b
	if b.count == 0 {
		b.min, b.max = math.Inf(1), math.Inf(-1)
	}
	b.count += row.N
	b.sum += row.Sum
	b.hits += row.Hits
	b.min = math.Min(b.min, row.Min)
	b.max = math.Max(b.max, row.Max)
	if row.LastT >= b.lastT {
		b.last, b.lastT = row.Last, row.LastT
	}
	if row.Sketch != "" {
		pa.sketches = append(pa.sketches, row.Sketch)
	}
	if row.Values != "" {
		if pa.values == nil {
			pa.values = map[string]bool{}
		}
		var vals []string
		json.Unmarshal([]byte(row.Values), &vals) // as rollup.go writes them
		for _, v := range vals {
			pa.values[v] = true
		}
	}
}

func (pa *partial) merge(o *partial) {
	pa.add(&RollupRow{N: o.b.count, Sum: o.b.sum, Hits: o.b.hits, Min: o.b.min, Max: o.b.max, Last: o.b.last, LastT: o.b.lastT})
	pa.sketches = append(pa.sketches, o.sketches...)
	for v := range o.values {
		if pa.values == nil {
			pa.values = map[string]bool{}
		}
		pa.values[v] = true
	}
}

// HistoryOf merges a panel's rollups into steps and gives each step the
// panel's aggregate, by group, the groups in the order of their tags. The
// runs of one instance add up; of the instances that rolled up the same
// minute or hour (several serving the same screens), the one that took
// the most readings counts. A step's span is its whole length, as a
// window's is for the live panel (a rate over a step not yet ended counts
// it whole).
func HistoryOf(ps Spec, loc *time.Location, step time.Duration, rows []RollupRow) ([]HistorySeries, error) {
	type slotKey struct {
		group string
		t     int64
	}
	type slot struct {
		tags  map[string]string
		insts map[string]*partial
	}
	slots := map[slotKey]*slot{}
	for i := range rows {
		row := &rows[i]
		if row.N == 0 {
			continue
		}
		k := slotKey{tagString(row.Group), row.Time.UnixNano()}
		sl := slots[k]
		if sl == nil {
			sl = &slot{tags: row.Group, insts: map[string]*partial{}}
			slots[k] = sl
		}
		inst := row.Run
		if i := strings.LastIndexByte(inst, '/'); i >= 0 {
			inst = inst[:i]
		}
		pa := sl.insts[inst]
		if pa == nil {
			pa = &partial{}
			sl.insts[inst] = pa
		}
		pa.add(row)
	}
	type seriesAgg struct {
		tags  map[string]string
		steps map[int64]*partial
	}
	byGroup := map[string]*seriesAgg{}
	for k, sl := range slots {
		var best *partial
		for _, inst := range slices.Sorted(maps.Keys(sl.insts)) {
			if pa := sl.insts[inst]; best == nil || pa.b.count > best.b.count {
				best = pa
			}
		}
		sa := byGroup[k.group]
		if sa == nil {
			sa = &seriesAgg{tags: sl.tags, steps: map[int64]*partial{}}
			byGroup[k.group] = sa
		}
		start := StepStart(time.Unix(0, k.t), step, loc).UnixNano()
		st := sa.steps[start]
		if st == nil {
			st = &partial{}
			sa.steps[start] = st
		}
		st.merge(best)
	}
	_, sketched := quantiles[ps.Agg]
	out := make([]HistorySeries, 0, len(byGroup))
	for _, key := range slices.Sorted(maps.Keys(byGroup)) {
		sa := byGroup[key]
		hs := HistorySeries{Tags: sa.tags, Points: []HistPoint{}}
		if hs.Tags == nil {
			hs.Tags = map[string]string{}
		}
		for _, start := range slices.Sorted(maps.Keys(sa.steps)) {
			st := sa.steps[start]
			b := &st.b
			r := result{count: b.count, sum: b.sum, min: b.min, max: b.max, last: b.last, lastT: b.lastT, hits: b.hits, distinct: len(st.values)}
			if sketched {
				for _, enc := range st.sketches {
					sk, err := decodeSketch(enc)
					if err != nil {
						return nil, fmt.Errorf("a stored sketch of %s: %w", ps.ID, err)
					}
					if err := mergeSketch(&r.sketch, sk); err != nil {
						return nil, err
					}
				}
			}
			end := time.Unix(0, start).Add(step)
			if step%(24*time.Hour) == 0 {
				end = StepStart(time.Unix(0, start).Add(step+time.Hour), step, loc) // days vary in length
			}
			if x, ok := r.value(&ps, end.Sub(time.Unix(0, start)).Seconds()); ok && finite(x) {
				hs.Points = append(hs.Points, HistPoint{T: time.Unix(0, start).UTC(), V: x})
			}
		}
		out = append(out, hs)
	}
	return out, nil
}

func mergeSketch(into **ddsketch.DDSketch, sk *ddsketch.DDSketch) error {
	if *into == nil {
		*into = sk
		return nil
	}
	return (*into).MergeWith(sk)
}

// RollupRowOf reads a rollup from a stored point's tags and fields (as a
// query answers them: numbers as float64 or int64, text as string).
func RollupRowOf(t time.Time, tags map[string]string, fields map[string]any) RollupRow {
	row := RollupRow{Time: t, Run: tags["run"], Group: map[string]string{}}
	for k, v := range tags {
		if g, ok := strings.CutPrefix(k, "g_"); ok {
			row.Group[g] = v
		}
	}
	num := func(k string) float64 {
		switch v := fields[k].(type) {
		case float64:
			return v
		case int64:
			return float64(v)
		}
		return 0
	}
	row.N, row.LastT = int64(num("n")), int64(num("last_t"))
	if v, ok := fields["last_t"].(int64); ok {
		row.LastT = v // exact: nanoseconds do not fit a float
	}
	row.Sum, row.Min, row.Max, row.Last, row.Hits = num("sum"), num("min"), num("max"), num("last"), num("hits")
	row.Sketch, _ = fields["sketch"].(string)
	row.Values, _ = fields["values"].(string)
	return row
}

// HistoryRequest asks for a panel's history.
type HistoryRequest struct {
	From, To time.Time
	// Step is each point's span; 0 chooses one from the range.
	Step time.Duration
	// Compare, if set, asks for the same range this much earlier too.
	Compare time.Duration
	// Group keeps the groups whose tags have these values.
	Group map[string]string
}

// HistoryAnswer is a panel's history.
type HistoryAnswer struct {
	Screen string          `json:"screen"`
	Panel  string          `json:"panel"`
	Agg    string          `json:"agg"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Step   string          `json:"step"`
	Series []HistorySeries `json:"series"`
	// Compare is the same range Offset earlier, its points' times moved
	// forward by Offset to lie over the range asked for.
	Compare []HistorySeries `json:"compare,omitempty"`
	Offset  string          `json:"offset,omitempty"`
	// Thresholds are the panel's, to draw.
	Thresholds *Thresholds `json:"thresholds,omitempty"`
}
