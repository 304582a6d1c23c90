package panel

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Rollups: each panel over readings (not a case panel) keeps, by group,
// the partial aggregates of the readings it takes per minute, per hour and
// per day in its screen's time zone (count, sum, min, max, last, the
// ratio's hits, a percentile panel's sketch, a distinct panel's values),
// and the engine hands them out to be stored (Engine.Rollups). A panel's
// history over any range is merged from them (history.go), with the same
// code the live panel aggregates with, so the two agree.
//
// A rollup is one point of the rollups' measurement at the start of its
// minute, hour or day, tagged with the screen, the panel, the resolution,
// the panel's definition (def: a hash of what decides which readings it
// takes and how), the run that took the readings (run: the instance and
// when it started) and its group's tags, each prefixed "g_". A distinct
// panel's values are a JSON array. A rollup is written when it changes and
// rewritten (the same point, replaced) while it takes late readings: 5
// minutes after its end for a minute, an hour for an hour or a day; a
// later reading is stored but not rolled up. A restart
// begins a new run, whose rollups add to the old run's for the same
// minute; the readings a start fills the panels with are not rolled up
// again. Instances that serve the same screens write the same rollups
// under their own runs: a history takes one instance's.

// DefaultRollups is the measurement rollups are stored in unless
// Options.Rollups names another.
const DefaultRollups = "cityscreen_rollup"

// Rollup resolutions: a minute, an hour, and a day in the panel's time
// zone (so that a year by day reads 365 rollups, not 8,760). rollHold is
// how long after its end each still takes late readings: a reading later
// than 5 minutes misses its minute's rollup but not its hour's and day's,
// and a group holds about ten buckets, not seventy.
const (
	rollMinute = 0
	rollHour   = 1
	rollDay    = 2
)

var rollHold = [...]int64{rollMinute: int64(5 * time.Minute), rollHour: int64(time.Hour), rollDay: int64(time.Hour)}

var resNames = [...]string{rollMinute: "1m", rollHour: "1h", rollDay: "1d"}

// maxRollValues caps the values a distinct panel's rollup keeps per
// minute, hour or day; past it the count is a floor.
const maxRollValues = 1000

type rollBucket struct {
	res    int
	start  int64 // unix nanoseconds
	end    int64
	b      bucket
	values map[string]bool // a distinct panel's
	dirty  bool
}

// rollGroup is one group's rollups not yet let go, newest last for each
// resolution (a few minutes, an hour or two, a day or two).
type rollGroup struct {
	tags    map[string]string
	buckets [len(resNames)][]*rollBucket
}

// rollup is a panel's rollups not yet let go.
type rollup struct {
	def    string
	run    string
	meas   string
	groups map[string]*rollGroup // by group key
	// day is the day last read into, [start, end) in the panel's zone:
	// a day's bounds are computed once a day, not once a reading.
	day [2]int64
}

func newRollup(ps Spec, opts *Options) *rollup {
	if caseAggs[ps.Agg] {
		return nil
	}
	return &rollup{def: Definition(ps), run: opts.Run, meas: opts.Rollups, groups: map[string]*rollGroup{}}
}

// Definition is a hash of what decides which readings a panel takes and
// what it keeps of them: its feed, field, tag, filter, where, grouping and
// whether it keeps sketches or values. Panels that differ only in their
// aggregate among count, sum, mean, min, max, last and rate share it, so
// their history survives a change among those.
func Definition(ps Spec) string {
	_, sketched := quantiles[ps.Agg]
	kind := "n"
	switch {
	case sketched:
		kind = "sketch"
	case ps.Agg == AggDistinct:
		kind = "values"
	case ps.Agg == AggRatio:
		kind = "ratio"
	}
	data, _ := json.Marshal([]any{ps.Feed, ps.Field, ps.Tag, ps.Filter, ps.Where, ps.GroupBy, kind})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}

// bounds are the start and end of the minute, hour or day that holds t.
func (ro *rollup) bounds(res int, t int64, loc *time.Location) (start, end int64) {
	switch res {
	case rollMinute:
		start = t - t%int64(time.Minute)
		return start, start + int64(time.Minute)
	case rollHour:
		start = t - t%int64(time.Hour)
		return start, start + int64(time.Hour)
	}
	if t < ro.day[0] || t >= ro.day[1] {
		start = periodStart(t, CalendarDay, loc)
		ro.day = [2]int64{start, periodStart(start+int64(25*time.Hour), CalendarDay, loc)} // days vary in length
	}
	return ro.day[0], ro.day[1]
}

// add takes a reading (its time set) of the group key into its minute,
// hour and day.
func (ro *rollup) add(p *panel, pt *feed.Point, key []byte, r reading, now int64, sketched, distinct bool) {
	if r.t < now-rollHold[rollDay]-int64(25*time.Hour) {
		return // older than any day still held
	}
	g := ro.groups[string(key)] // no allocation for a group already seen
	if g == nil {
		g = &rollGroup{tags: groupTags(pt, p.spec.GroupBy)}
		ro.groups[string(key)] = g
	}
	for res := range resNames {
		start, end := ro.bounds(res, r.t, p.loc)
		if end+rollHold[res] < now {
			continue // let go already
		}
		rb := g.bucket(res, start, end)
		rb.b.add(start, r, sketched)
		if distinct && len(rb.values) < maxRollValues {
			if rb.values == nil {
				rb.values = map[string]bool{}
			}
			rb.values[r.value] = true
		}
		rb.dirty = true
	}
}

// bucket is the group's rollup of resolution res that starts at start,
// made if it is not held yet.
func (g *rollGroup) bucket(res int, start, end int64) *rollBucket {
	held := g.buckets[res]
	for i := len(held) - 1; i >= 0; i-- {
		if held[i].start == start {
			return held[i]
		}
	}
	rb := &rollBucket{res: res, start: start, end: end}
	g.buckets[res] = append(held, rb)
	return rb
}

// points appends the rollups that changed since the last call, and lets
// go of those past their hold.
func (ro *rollup) points(out []feed.Point, screen, panelID string, now int64) []feed.Point {
	for key, g := range ro.groups {
		n := 0
		for res := range g.buckets {
			kept := g.buckets[res][:0]
			for _, rb := range g.buckets[res] {
				if rb.dirty {
					out = append(out, rb.point(ro.meas, screen, panelID, ro.def, ro.run, g.tags))
					rb.dirty = false
				}
				if rb.end+rollHold[res] >= now {
					kept = append(kept, rb)
				}
			}
			clear(g.buckets[res][len(kept):])
			g.buckets[res] = kept
			n += len(kept)
		}
		if n == 0 {
			delete(ro.groups, key)
		}
	}
	return out
}

func (rb *rollBucket) point(measurement, screen, panelID, def, run string, group map[string]string) feed.Point {
	tags := []feed.Tag{{Key: "def", Value: def}, {Key: "panel", Value: panelID}, {Key: "res", Value: resNames[rb.res]}, {Key: "run", Value: run}, {Key: "screen", Value: screen}}
	for _, g := range slices.Sorted(maps.Keys(group)) {
		if group[g] != "" {
			tags = append(tags, feed.Tag{Key: "g_" + g, Value: group[g]})
		}
	}
	slices.SortFunc(tags, func(a, b feed.Tag) int { return strings.Compare(a.Key, b.Key) })
	b := &rb.b
	fields := []feed.Field{
		{Key: "hits", Value: lineprotocol.MustNewValue(b.hits)},
		{Key: "last", Value: lineprotocol.MustNewValue(b.last)},
		{Key: "last_t", Value: lineprotocol.MustNewValue(b.lastT)},
		{Key: "max", Value: lineprotocol.MustNewValue(b.max)},
		{Key: "min", Value: lineprotocol.MustNewValue(b.min)},
		{Key: "n", Value: lineprotocol.MustNewValue(b.count)},
	}
	if b.sketch != nil {
		var enc []byte
		b.sketch.Encode(&enc, false)
		fields = append(fields, feed.Field{Key: "sketch", Value: lineprotocol.MustNewValue(base64.StdEncoding.EncodeToString(enc))})
	}
	fields = append(fields, feed.Field{Key: "sum", Value: lineprotocol.MustNewValue(b.sum)})
	if rb.values != nil {
		vals, _ := json.Marshal(slices.Sorted(maps.Keys(rb.values)))
		fields = append(fields, feed.Field{Key: "values", Value: lineprotocol.MustNewValue(string(vals))})
	}
	return feed.Point{Measurement: measurement, Tags: tags, Fields: fields, Time: time.Unix(0, rb.start).UTC()}
}

// Rollups are the panels' rollups that changed since the last call, as
// points to store; a panel replaced or removed gives its last ones once.
func (e *Engine) Rollups() []feed.Point {
	now := e.opts.Now().UnixNano()
	var out []feed.Point
	collect := func(p *panel) {
		p.mu.Lock()
		if p.roll != nil {
			out = p.roll.points(out, p.screen, p.spec.ID, now)
		}
		p.mu.Unlock()
	}
	for _, s := range e.layout.Load().screens {
		for _, p := range s.panels {
			collect(p)
		}
	}
	e.retiredMu.Lock()
	retired := e.retired
	e.retired = nil
	e.retiredMu.Unlock()
	for _, p := range retired {
		collect(p)
	}
	return out
}

// decodeSketch reads a sketch a rollup stored.
func decodeSketch(s string) (*ddsketch.DDSketch, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	sk, err := ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchBins)
	if err != nil {
		return nil, err
	}
	return sk, sk.DecodeAndMergeWith(data)
}
