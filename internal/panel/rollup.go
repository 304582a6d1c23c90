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

// rollStart is the start (unix nanoseconds) of the minute, hour or day
// that holds t.
func rollStart(res int, t int64, loc *time.Location) int64 {
	switch res {
	case rollMinute:
		return t - t%int64(time.Minute)
	case rollHour:
		return t - t%int64(time.Hour)
	}
	return periodStart(t, CalendarDay, loc)
}

// rollEnd is the end of the minute, hour or day that starts at start.
func rollEnd(res int, start int64, loc *time.Location) int64 {
	switch res {
	case rollMinute:
		return start + int64(time.Minute)
	case rollHour:
		return start + int64(time.Hour)
	}
	return periodStart(start+int64(25*time.Hour), CalendarDay, loc) // days vary in length
}

// maxRollValues caps the values a distinct panel's rollup keeps per
// minute, hour or day; past it the count is a floor.
const maxRollValues = 1000

type rollKey struct {
	group string
	res   int
	start int64 // unix nanoseconds
}

type rollBucket struct {
	tags   map[string]string
	b      bucket
	values map[string]bool // a distinct panel's
	dirty  bool
}

// rollup is a panel's rollups not yet let go.
type rollup struct {
	def     string
	run     string
	meas    string
	buckets map[rollKey]*rollBucket
	key     []byte
}

func newRollup(ps Spec, opts *Options) *rollup {
	if caseAggs[ps.Agg] {
		return nil
	}
	return &rollup{def: Definition(ps), run: opts.Run, meas: opts.Rollups, buckets: map[rollKey]*rollBucket{}}
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

// add takes a reading (its time set) into its minute, hour and day.
func (ro *rollup) add(p *panel, pt *feed.Point, r reading, now int64, sketched, distinct bool) {
	if r.t < now-rollHold[rollDay]-int64(25*time.Hour) {
		return // older than any day still held
	}
	ro.key = groupKey(ro.key[:0], pt, p.spec.GroupBy)
	for res := range resNames {
		start := rollStart(res, r.t, p.loc)
		if rollEnd(res, start, p.loc)+rollHold[res] < now {
			continue // let go already
		}
		k := rollKey{group: string(ro.key), res: res, start: start}
		rb := ro.buckets[k]
		if rb == nil {
			rb = &rollBucket{tags: groupTags(pt, p.spec.GroupBy)}
			ro.buckets[k] = rb
		}
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

// points appends the rollups that changed since the last call, and lets
// go of those past their hold.
func (ro *rollup) points(out []feed.Point, screen, panelID string, loc *time.Location, now int64) []feed.Point {
	for k, rb := range ro.buckets {
		if rb.dirty {
			out = append(out, rb.point(ro.meas, screen, panelID, ro.def, ro.run, k))
			rb.dirty = false
		}
		if rollEnd(k.res, k.start, loc)+rollHold[k.res] < now {
			delete(ro.buckets, k)
		}
	}
	return out
}

func (rb *rollBucket) point(measurement, screen, panelID, def, run string, k rollKey) feed.Point {
	tags := []feed.Tag{{Key: "def", Value: def}, {Key: "panel", Value: panelID}, {Key: "res", Value: resNames[k.res]}, {Key: "run", Value: run}, {Key: "screen", Value: screen}}
	for _, g := range slices.Sorted(maps.Keys(rb.tags)) {
		if rb.tags[g] != "" {
			tags = append(tags, feed.Tag{Key: "g_" + g, Value: rb.tags[g]})
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
	return feed.Point{Measurement: measurement, Tags: tags, Fields: fields, Time: time.Unix(0, k.start).UTC()}
}

// Rollups are the panels' rollups that changed since the last call, as
// points to store; a panel replaced or removed gives its last ones once.
func (e *Engine) Rollups() []feed.Point {
	now := e.opts.Now().UnixNano()
	var out []feed.Point
	collect := func(p *panel) {
		p.mu.Lock()
		if p.roll != nil {
			out = p.roll.points(out, p.screen, p.spec.ID, p.loc, now)
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
