package panel

import "math"

// buckets per window; the window slides in steps of window/buckets.
const buckets = 60

// bucket holds the aggregates of the readings of one time slot.
type bucket struct {
	slot     int64 // time slot number: unix nanoseconds / bucket width
	count    int64
	sum      float64
	min, max float64
	last     float64
	lastT    int64 // unix nanoseconds of the reading in last
}

// series is one sliding window of buckets. The zero value is empty.
type series struct {
	ring   [buckets + 1]bucket
	newest int64 // unix nanoseconds of the newest reading
}

// add records value x read at t (unix nanoseconds) in slot.
func (s *series) add(slot, t int64, x float64) {
	b := &s.ring[slot%int64(len(s.ring))]
	if b.slot != slot {
		if b.count > 0 && b.slot > slot {
			return // older than anything the ring still covers
		}
		*b = bucket{slot: slot, min: math.Inf(1), max: math.Inf(-1)}
	}
	b.count++
	b.sum += x
	b.min = math.Min(b.min, x)
	b.max = math.Max(b.max, x)
	if t >= b.lastT {
		b.last, b.lastT = x, t
	}
	if t > s.newest {
		s.newest = t
	}
}

// result aggregates the buckets of slots (now-buckets, now].
type result struct {
	count    int64
	sum      float64
	min, max float64
	last     float64
	lastT    int64
}

func (s *series) aggregate(now int64) result {
	r := result{min: math.Inf(1), max: math.Inf(-1)}
	for i := range s.ring {
		b := &s.ring[i]
		if b.count == 0 || b.slot <= now-buckets || b.slot > now {
			continue
		}
		r.count += b.count
		r.sum += b.sum
		r.min = math.Min(r.min, b.min)
		r.max = math.Max(r.max, b.max)
		if b.lastT >= r.lastT {
			r.last, r.lastT = b.last, b.lastT
		}
	}
	return r
}

// value returns the aggregate agg of r, and false if the window is empty.
func (r result) value(agg string) (float64, bool) {
	if r.count == 0 {
		return 0, false
	}
	switch agg {
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
	}
	return 0, false
}
