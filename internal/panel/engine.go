package panel

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Sink receives the views of a screen's changed panels. Publish must not
// block for long: it is called from the Engine's loop.
type Sink interface {
	Publish(screen string, views []View)
}

// Options tune an Engine. The zero value is usable.
type Options struct {
	// Coalesce is the shortest time between two publications for one
	// screen; 0 means 100ms.
	Coalesce time.Duration
	// Reevaluate is how often every panel is recomputed while no readings
	// arrive; 0 means 1s.
	Reevaluate time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Units gives the unit of a feed's field, by feed then field; panels
	// that set no unit take theirs from here.
	Units map[string]map[string]string
}

// Engine holds the live state of every panel of every screen. Observe and
// Views are safe for concurrent use; Run publishes changes until its
// context ends.
type Engine struct {
	opts   Options
	sink   Sink
	log    *slog.Logger
	layout atomic.Pointer[layout] // replaced whole by SetScreens

	overflow *prometheus.CounterVec
}

// layout is the screens and their panels, indexed by feed.
type layout struct {
	screens []*screen
	byFeed  map[string][]*panel
}

type screen struct {
	spec   ScreenSpec
	panels []*panel
}

type panel struct {
	spec   Spec
	screen string
	unit   string
	width  int64 // bucket width in nanoseconds

	mu       sync.Mutex
	single   series
	groups   map[string]*group
	key      []byte // scratch for group keys
	dirty    bool
	lastJSON []byte // the last view published, to publish only changes
}

type group struct {
	tags map[string]string
	series
}

// New builds the panels of the screens. It does not start publishing: call Run.
func New(screens []ScreenSpec, sink Sink, log *slog.Logger, reg prometheus.Registerer, opts Options) *Engine {
	if opts.Coalesce == 0 {
		opts.Coalesce = 100 * time.Millisecond
	}
	if opts.Reevaluate == 0 {
		opts.Reevaluate = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		opts: opts,
		sink: sink,
		log:  log.With("component", "panel"),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_panel_group_overflow_total",
			Help: "Readings left out of a grouped panel because it already tracks max_groups groups.",
		}, []string{"screen", "panel"}),
	}
	if reg != nil {
		reg.MustRegister(e.overflow)
	}
	e.layout.Store(&layout{byFeed: map[string][]*panel{}})
	e.SetScreens(screens, opts.Units)
	return e
}

// SetScreens replaces the screens. A panel whose definition (and unit) is
// unchanged keeps its state, so its values carry on; new or changed panels
// start empty. It reports which screens are new, changed (their panels
// differ) and gone, for the sink to follow.
func (e *Engine) SetScreens(screens []ScreenSpec, units map[string]map[string]string) (added, changed, removed []string) {
	old := e.layout.Load()
	keep := map[string]*panel{}
	oldSpecs := map[string]ScreenSpec{}
	for _, s := range old.screens {
		oldSpecs[s.spec.ID] = s.spec
		for _, p := range s.panels {
			keep[s.spec.ID+"/"+p.spec.ID] = p
		}
	}
	next := &layout{byFeed: map[string][]*panel{}}
	for _, ss := range screens {
		ss = ss.WithDefaults()
		s := &screen{spec: ss}
		for _, ps := range ss.Panels {
			unit := ps.Unit
			if unit == "" && ps.Field != "" && ps.Agg != AggCount {
				unit = units[ps.Feed][ps.Field]
			}
			p := keep[ss.ID+"/"+ps.ID]
			if p == nil || !reflect.DeepEqual(p.spec, ps) || p.unit != unit {
				p = &panel{spec: ps, screen: ss.ID, unit: unit, width: max(int64(ps.Window)/buckets, 1), dirty: true}
				if len(ps.GroupBy) > 0 {
					p.groups = map[string]*group{}
				}
			}
			s.panels = append(s.panels, p)
			next.byFeed[ps.Feed] = append(next.byFeed[ps.Feed], p)
		}
		next.screens = append(next.screens, s)
		if prev, ok := oldSpecs[ss.ID]; !ok {
			added = append(added, ss.ID)
		} else if !reflect.DeepEqual(prev, ss) {
			changed = append(changed, ss.ID)
		}
		delete(oldSpecs, ss.ID)
	}
	for id := range oldSpecs {
		removed = append(removed, id)
	}
	e.layout.Store(next)
	return added, changed, removed
}

// Observe adds a feed's points to every panel that aggregates that feed.
func (e *Engine) Observe(feedID string, points []feed.Point) {
	panels := e.layout.Load().byFeed[feedID]
	if len(panels) == 0 {
		return
	}
	now := e.opts.Now().UnixNano()
	for _, p := range panels {
		p.observe(points, now, e.overflow)
	}
}

func (p *panel) observe(points []feed.Point, now int64, overflow *prometheus.CounterVec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	oldest := now - int64(p.spec.Window)
	for i := range points {
		pt := &points[i]
		x := 1.0
		if p.spec.Field != "" {
			v, ok := pt.Field(p.spec.Field)
			if !ok {
				continue
			}
			if p.spec.Agg != AggCount {
				if x, ok = feed.Number(v); !ok {
					continue
				}
			}
		}
		t := min(pt.Time.UnixNano(), now) // a clock a little ahead reads as now
		if t <= oldest {
			continue
		}
		s := &p.single
		if p.groups != nil {
			p.key = groupKey(p.key[:0], pt, p.spec.GroupBy)
			g := p.groups[string(p.key)] // no allocation for a group already seen
			if g == nil {
				if len(p.groups) >= p.spec.MaxGroups {
					overflow.WithLabelValues(p.screen, p.spec.ID).Inc()
					continue
				}
				g = &group{tags: groupTags(pt, p.spec.GroupBy)}
				p.groups[string(p.key)] = g
			}
			s = &g.series
		}
		s.add(t/p.width, t, x)
		p.dirty = true
	}
}

// groupKey appends the values of the group-by tags, each ended by a zero
// byte, to buf.
func groupKey(buf []byte, pt *feed.Point, by []string) []byte {
	for _, k := range by {
		v, _ := pt.Tag(k)
		buf = append(buf, v...)
		buf = append(buf, 0)
	}
	return buf
}

func groupTags(pt *feed.Point, by []string) map[string]string {
	tags := make(map[string]string, len(by))
	for _, k := range by {
		tags[k], _ = pt.Tag(k)
	}
	return tags
}

// Views returns the current view of every panel of a screen, and false if
// there is no such screen.
func (e *Engine) Views(screenID string) ([]View, bool) {
	for _, s := range e.layout.Load().screens {
		if s.spec.ID == screenID {
			now := e.opts.Now()
			views := make([]View, len(s.panels))
			for i, p := range s.panels {
				views[i] = p.view(now)
			}
			return views, true
		}
	}
	return nil, false
}

// Screens returns the screens' specs in configuration order.
func (e *Engine) Screens() []ScreenSpec {
	screens := e.layout.Load().screens
	out := make([]ScreenSpec, len(screens))
	for i, s := range screens {
		out[i] = s.spec
	}
	return out
}

// Run publishes changed panels until ctx ends: dirty panels every
// coalescing interval, and every panel once per re-evaluation interval.
func (e *Engine) Run(ctx context.Context) {
	tick := time.NewTicker(e.opts.Coalesce)
	defer tick.Stop()
	var lastFull time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := e.opts.Now()
		full := now.Sub(lastFull) >= e.opts.Reevaluate
		if full {
			lastFull = now
		}
		e.publish(now, full)
	}
}

// publish sends each screen's changed panels to the sink. With all set,
// every panel is recomputed, not just those with new readings.
func (e *Engine) publish(now time.Time, all bool) {
	for _, s := range e.layout.Load().screens {
		var changed []View
		for _, p := range s.panels {
			if v, ok := p.changed(now, all); ok {
				changed = append(changed, v)
			}
		}
		if len(changed) > 0 {
			e.sink.Publish(s.spec.ID, changed)
		}
	}
}

func (p *panel) changed(now time.Time, all bool) (View, bool) {
	p.mu.Lock()
	if !p.dirty && !all {
		p.mu.Unlock()
		return View{}, false
	}
	p.dirty = false
	v := p.viewLocked(now)
	p.mu.Unlock()
	// A new reading moves Updated, which screens show as the panel's age,
	// so it is a change even when the value stays.
	b, err := json.Marshal(v)
	if err != nil {
		return View{}, false
	}
	if bytes.Equal(b, p.lastJSON) {
		return View{}, false
	}
	p.lastJSON = b
	return v, true
}

func (p *panel) view(now time.Time) View {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.viewLocked(now)
}

func (p *panel) viewLocked(now time.Time) View {
	v := View{
		ID: p.spec.ID, Title: p.spec.Title, Agg: p.spec.Agg, Window: FormatDuration(p.spec.Window),
		Feed: p.spec.Feed, Field: p.spec.Field, Unit: p.unit, GroupBy: p.spec.GroupBy,
		Thresholds: p.spec.Thresholds, StaleAfter: FormatDuration(p.spec.StaleAfter), Status: StatusNoData,
	}
	nowNS := now.UnixNano()
	slot := nowNS / p.width
	staleBefore := nowNS - int64(p.spec.StaleAfter)
	if p.groups == nil {
		r := p.single.aggregate(slot)
		if x, ok := r.value(p.spec.Agg); ok && finite(x) {
			v.Value = &x
			v.Updated = timePtr(p.single.newest)
			v.Status = p.status(x, p.single.newest, staleBefore)
		}
		return v
	}
	v.Groups = []GroupView{}
	var newest int64
	worst := StatusOK
	for key, g := range p.groups {
		r := g.aggregate(slot)
		x, ok := r.value(p.spec.Agg)
		if !ok || !finite(x) {
			delete(p.groups, key) // nothing left in its window: forget the group
			continue
		}
		st := p.status(x, g.newest, staleBefore)
		v.Groups = append(v.Groups, GroupView{Tags: g.tags, Value: x, Status: st, Updated: timePtr(g.newest)})
		newest = max(newest, g.newest)
		if severity[st] > severity[worst] {
			worst = st
		}
	}
	sortGroups(v.Groups)
	if len(v.Groups) > 0 {
		v.Updated = timePtr(newest)
		v.Status = worst
		if newest <= staleBefore {
			v.Status = StatusStale
		}
	}
	return v
}

// status classifies a value by the thresholds, or stale if its newest
// reading is too old.
func (p *panel) status(x float64, newest, staleBefore int64) string {
	if newest <= staleBefore {
		return StatusStale
	}
	if t := p.spec.Thresholds; t != nil {
		if t.Crit != nil && x >= *t.Crit {
			return StatusCrit
		}
		if t.Warn != nil && x >= *t.Warn {
			return StatusWarn
		}
	}
	return StatusOK
}

// severity orders the statuses of live groups; a stale group does not
// hide a live one in trouble.
var severity = map[string]int{StatusStale: 0, StatusOK: 1, StatusWarn: 2, StatusCrit: 3}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func timePtr(ns int64) *time.Time {
	t := time.Unix(0, ns).UTC()
	return &t
}
