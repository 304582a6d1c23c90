package panel

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Partial aggregates (docs/scaling.md, "Screens from partials"): an
// instance that stores a share of the stream collects, for each panel
// over readings, what it took of each group in each fine slot (Collect,
// TakeDeltas); an instance that serves screens merges every share's
// deltas into its panels (Merge) as if it had taken the readings itself.
// A fine slot divides every slot a panel keeps (its window's buckets, its
// calendar periods, its trend's steps and its rollups' minutes), so a
// delta lands in one bucket of each, and merging buckets is what adding
// their readings one by one does: counts, sums and the ratio's hits add,
// minimum and maximum take the extreme, the newest reading is last, the
// percentile sketches merge exactly, a distinct panel's values keep their
// newest time. Only a sum's floating-point rounding can differ, by the
// order of its additions (as it does between two instances that receive
// the same readings in another order).

// Delta is what one instance took of a panel's readings in one fine slot
// for one group.
type Delta struct {
	Screen string            `json:"s"`
	Panel  string            `json:"p"`
	Def    string            `json:"d"` // Definition of the panel it was taken for
	Tags   map[string]string `json:"g,omitempty"`
	Slot   int64             `json:"t"` // the fine slot's start, unix nanoseconds
	Count  int64             `json:"n"`
	Sum    float64           `json:"sum"`
	Min    float64           `json:"min"`
	Max    float64           `json:"max"`
	Last   float64           `json:"last"`
	LastT  int64             `json:"lt"`
	Hits   float64           `json:"hits,omitempty"`
	Sketch []byte            `json:"sk,omitempty"` // a percentile panel's DDSketch
	Values map[string]int64  `json:"v,omitempty"`  // a distinct panel's values, with the newest time of each
	Pos    *[2]float64       `json:"pos,omitempty"`
	key    string
}

// fineSlot is the width of a panel's fine slots: a second, or less when
// its window's buckets are shorter or not whole seconds (their greatest
// common divisor with a second).
func (p *panel) fineSlot() int64 {
	if p.spec.Calendar != "" || p.width <= 0 {
		return 1e9
	}
	a, b := p.width, int64(1e9)
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// collected is the deltas an Engine collects, by panel, group and slot.
type collected struct {
	mu     sync.Mutex
	deltas map[string]*collecting
}

type collecting struct {
	d      Delta
	b      bucket
	values map[string]int64
	pos    [2]float64
	hasPos bool
}

// Collect takes a share's readings of a feed into deltas instead of the
// panels: for an instance that stores and publishes partials. Case panels
// take nothing here (their values come from the case books, which take a
// case feed's whole stream).
func (e *Engine) Collect(feedID string, points []feed.Point) {
	panels := e.layout.Load().byFeed[feedID]
	if len(panels) == 0 || len(points) == 0 {
		return
	}
	now := e.opts.Now().UnixNano()
	c := &e.collected
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deltas == nil {
		c.deltas = map[string]*collecting{}
	}
	var key []byte
	for _, p := range panels {
		if caseAggs[p.spec.Agg] {
			continue
		}
		_, sketched := quantiles[p.spec.Agg]
		fine := p.fineSlot()
		def := p.def
		for i := range points {
			pt := &points[i]
			r, ok := p.readingOf(pt)
			if !ok {
				continue
			}
			r.t = min(pt.Time.UnixNano(), now)
			slot := r.t - r.t%fine
			key = append(key[:0], p.screen...)
			key = append(key, 0)
			key = append(key, p.spec.ID...)
			key = append(key, 0)
			key = groupKey(key, pt, p.spec.GroupBy)
			key = append(key, 0)
			key = strconv.AppendInt(key, slot, 10)
			cd := c.deltas[string(key)]
			if cd == nil {
				cd = &collecting{d: Delta{Screen: p.screen, Panel: p.spec.ID, Def: def, Slot: slot, Tags: groupTags(pt, p.spec.GroupBy)}}
				cd.b.slot = slot
				cd.b.min, cd.b.max = math.Inf(1), math.Inf(-1)
				c.deltas[string(key)] = cd
			}
			cd.b.add(slot, r, sketched)
			if p.spec.Agg == AggDistinct {
				if cd.values == nil {
					cd.values = map[string]int64{}
				}
				if r.t > cd.values[r.value] {
					cd.values[r.value] = r.t
				}
			}
			if pos := p.spec.Position; pos != nil {
				var g group
				g.position(pos, pt)
				if g.hasPos {
					cd.pos, cd.hasPos = g.pos, true
				}
			}
		}
	}
}

// TakeDeltas returns what Collect took since the last call, oldest slot
// first, and starts afresh.
func (e *Engine) TakeDeltas() []Delta {
	c := &e.collected
	c.mu.Lock()
	held := c.deltas
	c.deltas = nil
	c.mu.Unlock()
	out := make([]Delta, 0, len(held))
	for _, cd := range held {
		d := cd.d
		b := &cd.b
		d.Count, d.Sum, d.Min, d.Max, d.Last, d.LastT, d.Hits = b.count, b.sum, b.min, b.max, b.last, b.lastT, b.hits
		if b.sketch != nil {
			var buf []byte
			b.sketch.Encode(&buf, false)
			d.Sketch = buf
		}
		d.Values = cd.values
		if cd.hasPos {
			pos := cd.pos
			d.Pos = &pos
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

// sketchMapping is the index mapping of the panels' sketches, for decoding
// a delta's.
var sketchMapping, _ = mapping.NewLogarithmicMapping(sketchAccuracy)

// Merge gives the panels the deltas of one or more shares, as Observe
// gives them readings: a delta for a panel that is not here, or defined
// otherwise here (a configuration not yet deployed everywhere), is left
// out and counted in the result.
func (e *Engine) Merge(ds []Delta, filling bool) (left int) {
	l := e.layout.Load()
	now := e.opts.Now().UnixNano()
	touched := false
	for i := range ds {
		d := &ds[i]
		p := l.panel(d.Screen, d.Panel)
		if p == nil || caseAggs[p.spec.Agg] || p.def != d.Def {
			left++
			continue
		}
		var b bucket
		b.slot, b.count, b.sum, b.min, b.max, b.last, b.lastT, b.hits = d.Slot, d.Count, d.Sum, d.Min, d.Max, d.Last, d.LastT, d.Hits
		if len(d.Sketch) > 0 {
			sk, err := ddsketch.DecodeDDSketch(d.Sketch, store.DenseStoreConstructor, sketchMapping)
			if err != nil {
				left++
				continue
			}
			b.sketch = sk
		}
		p.merge(d, &b, now, e.overflow, filling)
		if !filling {
			e.leadIfQuiet(p, now)
		}
		touched = true
	}
	if touched {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
	return left
}

// panel finds a screen's panel.
func (l *layout) panel(screen, id string) *panel {
	for _, s := range l.screens {
		if s.spec.ID != screen {
			continue
		}
		for _, p := range s.panels {
			if p.spec.ID == id {
				return p
			}
		}
	}
	return nil
}

// merge is observe for a delta: its bucket b goes to the window, the trend
// and the rollups, as its readings would have one by one.
func (p *panel) merge(d *Delta, b *bucket, now int64, overflow *prometheus.CounterVec, filling bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	oldest := p.oldest(now)
	var key []byte
	if len(p.spec.GroupBy) > 0 {
		key = groupKeyOf(d.Tags, p.spec.GroupBy)
	}
	if p.roll != nil && !filling {
		p.roll.merge(p, d, key, b, now)
	}
	if b.lastT <= oldest {
		if p.trend != nil && p.groups == nil {
			p.trend.merge(b)
		}
		return
	}
	s, g := p.seriesOf(key, nil, d.Tags, overflow)
	if s == nil {
		return
	}
	s.merge(p.slotOf(b.slot), b, d.Values)
	if d.Pos != nil && g != nil {
		g.pos, g.hasPos = *d.Pos, true
	}
	if p.trend != nil {
		p.trend.merge(b)
	}
	p.dirty = true
}

// groupKeyOf is groupKey for a group's tags.
func groupKeyOf(tags map[string]string, by []string) []byte {
	var buf []byte
	for _, k := range by {
		buf = append(buf, tags[k]...)
		buf = append(buf, 0)
	}
	return buf
}

// merge adds bucket o's readings to the bucket of slot, as add does each.
func (b *bucket) merge(slot int64, o *bucket) bool {
	if b.slot != slot {
		if b.count > 0 && b.slot > slot {
			return false
		}
		sk := b.sketch
		*b = bucket{slot: slot, min: math.Inf(1), max: math.Inf(-1)}
		if sk != nil {
			sk.Clear()
			b.sketch = sk
		}
	}
	b.count += o.count
	b.sum += o.sum
	b.min = math.Min(b.min, o.min)
	b.max = math.Max(b.max, o.max)
	b.hits += o.hits
	if o.lastT >= b.lastT {
		b.last, b.lastT = o.last, o.lastT
	}
	if o.sketch != nil {
		if b.sketch == nil {
			b.sketch, _ = ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchBins)
		}
		b.sketch.MergeWith(o.sketch)
	}
	return true
}

// merge records bucket o in slot, and a distinct panel's values.
func (s *series) merge(slot int64, o *bucket, values map[string]int64) {
	if !s.ring[uint64(slot)%uint64(len(s.ring))].merge(slot, o) {
		return
	}
	for v, t := range values {
		if s.seen == nil {
			s.seen = map[string]int64{}
		}
		if t > s.seen[v] {
			s.seen[v] = t
		}
	}
	if o.lastT > s.newest {
		s.newest = o.lastT
	}
}

// merge records bucket o in its step.
func (tr *trend) merge(o *bucket) {
	slot := o.slot / tr.step
	tr.buckets[uint64(slot)%uint64(len(tr.buckets))].merge(slot, o)
}

// merge takes a delta into its minute, hour and day, as add takes each
// reading.
func (ro *rollup) merge(p *panel, d *Delta, key []byte, o *bucket, now int64) {
	if o.lastT < now-rollHold[rollDay]-int64(25*time.Hour) {
		return
	}
	g := ro.groups[string(key)]
	if g == nil {
		g = &rollGroup{tags: d.Tags}
		ro.groups[string(key)] = g
	}
	for res := range resNames {
		start, end := ro.bounds(res, o.slot, p.loc)
		if end+rollHold[res] < now {
			continue
		}
		rb := g.bucket(res, start, end)
		rb.b.merge(start, o)
		if len(d.Values) > 0 {
			if rb.values == nil {
				rb.values = map[string]bool{}
			}
			for v := range d.Values {
				if len(rb.values) < maxRollValues {
					rb.values[v] = true
				}
			}
		}
		rb.dirty = true
	}
}
