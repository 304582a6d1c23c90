package panel

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
)

// buckets per window; the window slides in steps of window/buckets.
const buckets = 60

// Sketch settings of the percentile aggregates: 1% relative accuracy, at
// most 1024 bins per bucket (beyond which the lowest values collapse, so
// high percentiles stay accurate).
const (
	sketchAccuracy = 0.01
	sketchBins     = 1024
)

// bucket holds the aggregates of the readings of one time slot.
type bucket struct {
	slot     int64 // time slot number: unix nanoseconds / bucket width, or the calendar period's start
	count    int64
	sum      float64
	min, max float64
	last     float64
	lastT    int64   // unix nanoseconds of the reading in last
	hits     float64 // the part of sum that matched a ratio's where
	sketch   *ddsketch.DDSketch
}

// series is one window of buckets. The zero value is empty.
type series struct {
	ring   [buckets + 1]bucket
	newest int64 // unix nanoseconds of the newest reading
	// seen holds, for distinct, each value and when it was last read.
	seen map[string]int64
}

// reading is one value for a series.
type reading struct {
	t     int64 // unix nanoseconds
	x     float64
	hit   bool   // matches a ratio's where
	value string // for distinct
}

// add records a reading in slot. sketched says to keep a sketch for
// percentiles; distinct, to remember the value.
func (s *series) add(slot int64, r reading, sketched, distinct bool) {
	if !s.ring[uint64(slot)%uint64(len(s.ring))].add(slot, r, sketched) {
		return
	}
	if distinct {
		if s.seen == nil {
			s.seen = map[string]int64{}
		}
		if r.t > s.seen[r.value] {
			s.seen[r.value] = r.t
		}
	}
	if r.t > s.newest {
		s.newest = r.t
	}
}

// add records a reading in the bucket, which it makes slot's first if it
// held an older slot. It tells false for a reading older than the bucket
// covers.
func (b *bucket) add(slot int64, r reading, sketched bool) bool {
	if b.slot != slot {
		if b.count > 0 && b.slot > slot {
			return false
		}
		sk := b.sketch
		*b = bucket{slot: slot, min: math.Inf(1), max: math.Inf(-1)}
		if sk != nil {
			sk.Clear() // kept: a sketch's bins are reused, not allocated anew
			b.sketch = sk
		}
	}
	b.count++
	b.sum += r.x
	b.min = math.Min(b.min, r.x)
	b.max = math.Max(b.max, r.x)
	if r.hit {
		b.hits += r.x
	}
	if r.t >= b.lastT {
		b.last, b.lastT = r.x, r.t
	}
	if sketched {
		if b.sketch == nil {
			b.sketch, _ = ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchBins)
		}
		b.sketch.Add(r.x)
	}
	return true
}

// result aggregates the buckets of slots (lo, hi].
type result struct {
	count    int64
	sum      float64
	min, max float64
	last     float64
	lastT    int64
	hits     float64
	sketch   *ddsketch.DDSketch // merged, when the buckets have sketches
	distinct int
}

// aggregate sums up the buckets of slots (lo, hi]; for distinct, the
// values read since since (unix nanoseconds), forgetting older ones.
func (s *series) aggregate(lo, hi, since int64) result {
	r := result{min: math.Inf(1), max: math.Inf(-1)}
	for i := range s.ring {
		b := &s.ring[i]
		if b.count == 0 || b.slot <= lo || b.slot > hi {
			continue
		}
		r.count += b.count
		r.sum += b.sum
		r.hits += b.hits
		r.min = math.Min(r.min, b.min)
		r.max = math.Max(r.max, b.max)
		if b.lastT >= r.lastT {
			r.last, r.lastT = b.last, b.lastT
		}
		if b.sketch != nil {
			if r.sketch == nil {
				r.sketch = b.sketch.Copy()
			} else {
				r.sketch.MergeWith(b.sketch)
			}
		}
	}
	for v, t := range s.seen {
		if t <= since {
			delete(s.seen, v)
			continue
		}
		r.distinct++
	}
	return r
}

// value returns the aggregate agg of r, and false if the window is empty.
// span is the time the window covers so far, for rates.
func (r result) value(spec *Spec, span float64) (float64, bool) {
	if r.count == 0 {
		return 0, false
	}
	switch spec.Agg {
	case AggCount:
		return float64(r.count), true
	case AggSum:
		return r.sum, true
	case AggMean:
		return r.sum / float64(r.count), true
	case AggMin:
		return r.min, true
	case AggMax:
		return r.max, true
	case AggLast:
		return r.last, true
	case AggRate:
		if span <= 0 {
			return 0, false
		}
		return float64(r.count) / span * spec.Per.Seconds(), true
	case AggDistinct:
		return float64(r.distinct), true
	case AggRatio:
		if r.sum == 0 {
			return 0, false
		}
		return 100 * r.hits / r.sum, true
	}
	if q, ok := quantiles[spec.Agg]; ok && r.sketch != nil {
		x, err := r.sketch.GetValueAtQuantile(q)
		return x, err == nil
	}
	return 0, false
}
