package panel

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/citymap"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Sink receives the views of a screen's changed panels, and sends them to
// the screens' clients a turn at a time. Neither may block for long: they
// are called from the Engine's loop.
type Sink interface {
	// Publish records a screen's changed panels; they go out at each
	// client's next turn.
	Publish(screen string, views []View)
	// Turn sends what was published since to the clients of turn i (0 to
	// Turns-1), or to every client when i is negative.
	Turn(i int)
}

// Turns is how many turns a sink's clients take: the engine publishes
// every interval divided by Turns and ends each publication with the next
// turn, so each client gets at most a frame an interval, a change waits
// at most an interval for it, and a frame's writes to 1,000 clients go
// out as four bursts of 250 spread over the interval rather than one of
// 1,000, whose last write would come tens of milliseconds after its first.
const Turns = 4

// Options tune an Engine. The zero value is usable.
type Options struct {
	// Coalesce is the shortest time between two frames to one client,
	// a leading edge aside, and the longest a change waits for one; 0
	// means 100ms.
	Coalesce time.Duration
	// Reevaluate is how often every panel is recomputed while no readings
	// arrive; 0 means 1s.
	Reevaluate time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Units gives the unit of a feed's field, by feed then field; panels
	// that set no unit take theirs from here.
	Units map[string]map[string]feed.Text
	// Alerts, if set, receive alert events and mark the views of active
	// alerts.
	Alerts Alerts
	// CasesDir, if set, is where case feeds' books are kept so that their
	// cases survive a restart (casestore.go).
	CasesDir string
	// Run names this run of this instance in its rollups (rollup.go):
	// "instance/start". Empty means "local/" and the engine's start.
	Run string
	// Rollups is the measurement of the rollups; empty means
	// DefaultRollups.
	Rollups string
}

// Engine holds the live state of every panel of every screen. Observe and
// Views are safe for concurrent use; Run publishes changes until its
// context ends.
type Engine struct {
	opts   Options
	sink   Sink
	log    *slog.Logger
	layout atomic.Pointer[layout]               // replaced whole by SetScreens
	books  atomic.Pointer[map[string]*caseBook] // by case feed, replaced whole by SetCases
	kick   chan struct{}                        // a reading arrived: publish at once if the screens are quiet

	overflow    *prometheus.CounterVec
	caseRefused *prometheus.CounterVec

	retiredMu sync.Mutex
	retired   []*panel // replaced or removed, their last rollups not yet taken

	// collected is what Collect took, for an instance that publishes
	// partials (partials.go).
	collected collected

	// leading is set when a panel changed after being quiet for longer
	// than the coalescing interval: Run publishes at once.
	leading atomic.Bool
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
	geo    *citymap.Map // the screen's map, for a map panel's station positions
	unit   feed.Text
	width  int64          // bucket width in nanoseconds
	loc    *time.Location // of calendar windows

	mu         sync.Mutex
	single     series
	alert      alertState
	alerts     Alerts
	trend      *trend
	groups     map[string]*group
	book       *caseBook             // a case panel's feed's book
	caseGroups map[string]*caseGroup // a grouped case panel's groups
	key        []byte                // scratch for group keys
	roll       *rollup               // its partial aggregates per minute and hour, to be stored (rollup.go)
	def        string                // Definition(spec), once
	dirty      bool
	lastJSON   []byte // the last view published, to publish only changes
	// sentAt is when the panel was last published (unix ns): a panel
	// quiet for longer than the coalescing interval goes out as soon as
	// it changes (Run).
	sentAt atomic.Int64
}

type group struct {
	tags   map[string]string
	alert  alertState
	pos    [2]float64 // longitude, latitude from the newest reading with both, for a panel with Position
	hasPos bool
	// located is the position last looked up on the map, and onMap the
	// answer: positions move rarely, and the lookup walks the polygons.
	located       [2]float64
	onMap, looked bool
	series
}

// DefaultCoalesce is Options.Coalesce's default, which the
// configuration's hub.coalesce shares.
const DefaultCoalesce = 100 * time.Millisecond

// New builds the panels of the screens. It does not start publishing: call Run.
func New(screens []ScreenSpec, sink Sink, log *slog.Logger, reg prometheus.Registerer, opts Options) *Engine {
	opts.Coalesce = cmp.Or(opts.Coalesce, DefaultCoalesce)
	if opts.Reevaluate == 0 {
		opts.Reevaluate = time.Second
	}
	if opts.Rollups == "" {
		opts.Rollups = DefaultRollups
	}
	if opts.Run == "" {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		opts.Run = fmt.Sprintf("local/%d", now().UnixMilli())
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		kick: make(chan struct{}, 1),
		opts: opts,
		sink: sink,
		log:  log.With("component", "panel"),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_panel_group_overflow_total",
			Help: "Readings left out of a grouped panel because it already tracks max_groups groups.",
		}, []string{"screen", "panel"}),
		caseRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_case_events_refused_total",
			Help: "Case events not applied: for a case not known, with a status that does not open one, or closing one.",
		}, []string{"feed", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(e.overflow, e.caseRefused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_panels", Help: "Panels computed, on every screen.",
			}, func() float64 { p, _ := e.Counts(); return float64(p) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_panel_series", Help: "Series the panels keep: one per ungrouped panel, one per group of a grouped one.",
			}, func() float64 { _, s := e.Counts(); return float64(s) }))
	}
	e.layout.Store(&layout{byFeed: map[string][]*panel{}})
	e.books.Store(&map[string]*caseBook{})
	e.SetScreens(screens, opts.Units)
	return e
}

// Counts reports how many panels there are and how many series they keep.
func (e *Engine) Counts() (panels, series int) {
	for _, s := range e.layout.Load().screens {
		for _, p := range s.panels {
			panels++
			p.mu.Lock()
			if len(p.spec.GroupBy) > 0 {
				series += len(p.groups)
			} else {
				series++
			}
			p.mu.Unlock()
		}
	}
	return panels, series
}

// SetScreens replaces the screens. A panel whose definition (and unit) is
// unchanged keeps its state, so its values carry on; new or changed panels
// start empty. It reports which screens are new, changed (their panels
// differ) and gone, for the sink to follow.
func (e *Engine) SetScreens(screens []ScreenSpec, units map[string]map[string]feed.Text) (added, changed, removed []string) {
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
		loc, err := time.LoadLocation(ss.TimeZone)
		if err != nil {
			loc = time.UTC // validation refuses such a screen; this is for tests that skip it
		}
		for _, ps := range ss.Panels {
			unit := defaultUnit(ps, units[ps.Feed][ps.Field])
			p := keep[ss.ID+"/"+ps.ID]
			var geo *citymap.Map
			if ss.Map != nil && ps.View == ViewMap {
				geo = ss.Map.Geo
			}
			if p == nil || !reflect.DeepEqual(p.spec, ps) || !reflect.DeepEqual(p.unit, unit) || p.loc.String() != loc.String() || !sameMap(p.geo, geo) {
				p = &panel{spec: ps, screen: ss.ID, geo: geo, unit: unit, width: max(int64(ps.Window)/buckets, 1), loc: loc, alerts: e.opts.Alerts,
					trend: newTrend(ps.History), roll: newRollup(ps, &e.opts), def: Definition(ps), dirty: true}
				if len(ps.GroupBy) > 0 {
					p.groups = map[string]*group{}
				}
			}
			if p == keep[ss.ID+"/"+ps.ID] {
				delete(keep, ss.ID+"/"+ps.ID) // kept: what is left in keep is replaced or removed
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
	e.retiredMu.Lock()
	for _, p := range keep {
		e.retired = append(e.retired, p) // its last rollups, once
	}
	e.retiredMu.Unlock()
	e.layout.Store(next)
	e.attachBooks()
	return added, changed, removed
}

// Observe adds a feed's points to every panel that aggregates that feed.
func (e *Engine) Observe(feedID string, points []feed.Point) {
	if b := (*e.books.Load())[feedID]; b != nil {
		points = b.apply(points, e.opts.Now()) // cases are kept whether or not a panel shows them
	}
	e.observe(feedID, points, false)
}

// observe gives points to the feed's panels; filling, not to their
// rollups, which the run before this one stored already.
func (e *Engine) observe(feedID string, points []feed.Point, filling bool) {
	panels := e.layout.Load().byFeed[feedID]
	if len(panels) == 0 || len(points) == 0 {
		return
	}
	now := e.opts.Now().UnixNano()
	for _, p := range panels {
		p.observe(points, now, e.overflow, filling)
		if !filling {
			e.leadIfQuiet(p, now)
		}
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// leadIfQuiet has Run publish at once if p was last published longer
// than the coalescing interval ago.
func (e *Engine) leadIfQuiet(p *panel, now int64) {
	if now-p.sentAt.Load() >= int64(e.opts.Coalesce) && !e.leading.Load() {
		e.leading.Store(true)
	}
}

// defaultUnit is a panel's unit: its own, else what its aggregate gives
// (a rate's per unit, a ratio's percent), else its field's.
func defaultUnit(ps Spec, fieldUnit feed.Text) feed.Text {
	switch {
	case !ps.Unit.IsZero():
		return ps.Unit
	case ps.Agg == AggRate:
		return feed.PlainText(map[time.Duration]string{time.Second: "/s", time.Minute: "/min", time.Hour: "/h"}[ps.Per])
	case ps.Agg == AggRatio:
		return feed.PlainText("%")
	case ps.Agg == AggCount || ps.Agg == AggDistinct || ps.Field == "":
		return feed.Text{}
	}
	return fieldUnit
}

func (p *panel) observe(points []feed.Point, now int64, overflow *prometheus.CounterVec, filling bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if caseAggs[p.spec.Agg] {
		p.dirty = true // its values come from the book
		return
	}
	oldest := p.oldest(now)
	_, sketched := quantiles[p.spec.Agg]
	distinct := p.spec.Agg == AggDistinct
	for i := range points {
		pt := &points[i]
		r, ok := p.readingOf(pt)
		if !ok {
			continue
		}
		t := min(pt.Time.UnixNano(), now) // a clock a little ahead reads as now
		r.t = t
		if len(p.spec.GroupBy) > 0 {
			p.key = groupKey(p.key[:0], pt, p.spec.GroupBy) // once, for the rollups and the group
		}
		if p.roll != nil && !filling {
			p.roll.add(p, pt, p.key, r, now, sketched, distinct)
		}
		if t <= oldest {
			if p.trend != nil && p.groups == nil {
				p.trend.add(r, sketched) // before the window, still in the trend
			}
			continue
		}
		s, g := p.seriesOf(p.key, pt, nil, overflow)
		if s == nil {
			continue
		}
		s.add(p.slotOf(t), r, sketched, distinct)
		if pos := p.spec.Position; pos != nil && g != nil {
			g.position(pos, pt)
		}
		if p.trend != nil {
			p.trend.add(r, sketched)
		}
		p.dirty = true
	}
}

// oldest is the latest time (unix ns) a reading is too old for the
// panel's window at now: the window's length back, or, for a calendar
// window, the start of the period before this one (yesterday beside
// today).
func (p *panel) oldest(now int64) int64 {
	if p.spec.Calendar == "" {
		return now - int64(p.spec.Window)
	}
	start := periodStart(now, p.spec.Calendar, p.loc)
	return periodStart(start-1, p.spec.Calendar, p.loc) - 1
}

// seriesOf is the series a reading of group key goes to, and its group
// (nil for an ungrouped panel). A group not seen yet is made with tags,
// or those of pt when tags is nil; nil when the panel already keeps
// max_groups groups, counted in overflow. The caller holds p.mu.
func (p *panel) seriesOf(key []byte, pt *feed.Point, tags map[string]string, overflow *prometheus.CounterVec) (*series, *group) {
	if p.groups == nil {
		return &p.single, nil
	}
	g := p.groups[string(key)] // no allocation for a group already seen
	if g == nil {
		if len(p.groups) >= p.spec.MaxGroups {
			overflow.WithLabelValues(p.screen, p.spec.ID).Inc()
			return nil, nil
		}
		if tags == nil && pt != nil {
			tags = groupTags(pt, p.spec.GroupBy)
		}
		g = &group{tags: tags}
		p.groups[string(key)] = g
	}
	return &g.series, g
}

// readingOf is what the panel takes of a point: false when its filter
// leaves the point out, or it lacks the panel's field or tag. The time is
// the caller's to set.
func (p *panel) readingOf(pt *feed.Point) (reading, bool) {
	if !matches(pt, p.spec.Filter) {
		return reading{}, false
	}
	r := reading{x: 1}
	if p.spec.Agg == AggDistinct && p.spec.Tag != "" {
		v, ok := pt.Tag(p.spec.Tag)
		if !ok {
			return reading{}, false
		}
		r.value = v
	} else if p.spec.Field != "" {
		v, ok := pt.Field(p.spec.Field)
		if !ok {
			return reading{}, false
		}
		switch p.spec.Agg {
		case AggCount, AggRate:
		case AggDistinct:
			r.value = fieldString(v)
		default:
			if r.x, ok = feed.Number(v); !ok {
				return reading{}, false
			}
		}
	}
	if p.spec.Agg == AggRatio {
		r.hit = matches(pt, p.spec.Where)
	}
	return r, true
}

// slotOf is the bucket a reading at t (unix nanoseconds) goes to: its slot
// of the sliding window, or the start of its calendar period.
func (p *panel) slotOf(t int64) int64 {
	if p.spec.Calendar != "" {
		return periodStart(t, p.spec.Calendar, p.loc)
	}
	return t / p.width
}

// bounds are the slots (lo, hi] the window covers at now, since when
// distinct values count, and the seconds the window spans so far.
func (p *panel) bounds(now int64) (lo, hi, since int64, span float64) {
	if p.spec.Calendar != "" {
		start := periodStart(now, p.spec.Calendar, p.loc)
		return start - 1, start, start - 1, float64(now-start) / 1e9
	}
	slot := now / p.width
	return slot - buckets, slot, now - int64(p.spec.Window), p.spec.Window.Seconds()
}

// periodStart is the start (unix nanoseconds) of the calendar period that
// holds t: the hour, the day, or the week from Monday, in loc.
func periodStart(t int64, calendar string, loc *time.Location) int64 {
	lt := time.Unix(0, t).In(loc)
	y, m, d := lt.Date()
	switch calendar {
	case CalendarHour:
		return time.Date(y, m, d, lt.Hour(), 0, 0, 0, loc).UnixNano()
	case CalendarWeek:
		return time.Date(y, m, d-(int(lt.Weekday())+6)%7, 0, 0, 0, 0, loc).UnixNano()
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UnixNano()
}

// matches tells whether a point's tags (or fields) have the values want
// gives.
func matches(pt *feed.Point, want map[string]string) bool {
	for k, v := range want {
		if tv, ok := pt.Tag(k); ok {
			if tv != v {
				return false
			}
			continue
		}
		fv, ok := pt.Field(k)
		if !ok || fieldString(fv) != v {
			return false
		}
	}
	return true
}

// fieldString writes a field's value as filters and distinct compare it.
func fieldString(v lineprotocol.Value) string {
	switch v.Kind() {
	case lineprotocol.String:
		return v.StringV()
	case lineprotocol.Bool:
		return strconv.FormatBool(v.BoolV())
	case lineprotocol.Int:
		return strconv.FormatInt(v.IntV(), 10)
	case lineprotocol.Uint:
		return strconv.FormatUint(v.UintV(), 10)
	case lineprotocol.Float:
		return strconv.FormatFloat(v.FloatV(), 'g', -1, 64)
	}
	return ""
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

// quietChanged reports whether a panel that had been quiet for longer than
// the coalescing interval changed and is yet to be published (a reading
// can find a panel quiet while the ticker's publication is sending it).
func (e *Engine) quietChanged(now time.Time) bool {
	for _, s := range e.layout.Load().screens {
		for _, p := range s.panels {
			if now.UnixNano()-p.sentAt.Load() < int64(e.opts.Coalesce) {
				continue
			}
			p.mu.Lock()
			dirty := p.dirty
			p.mu.Unlock()
			if dirty {
				return true
			}
		}
	}
	return false
}

// Run publishes changed panels until ctx ends: a change after a quiet
// spell at once to every client, then, while readings keep coming, to
// each client at its turn, once per coalescing interval (a burst is held
// back, not each reading sent), and every panel once per re-evaluation
// interval. It publishes every quarter interval (Turns), each time for
// the next turn's clients.
//
// The leading edge is per panel: a panel quiet for longer than the
// interval goes out as soon as it changes, though its screen sent a frame
// a moment ago. Everything else changed, on every screen, goes with it,
// to every turn, and the next turn comes a quarter interval after it, not
// a few milliseconds later with a frame of its own (at 1,000 clients,
// every frame is 1,000 writes). No reading waits longer than the
// interval.
func (e *Engine) Run(ctx context.Context) {
	step := e.opts.Coalesce / Turns
	tick := time.NewTicker(step)
	defer tick.Stop()
	var lastFull time.Time
	turn := -1
	for {
		var to int
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			turn = (turn + 1) % Turns
			to = turn
		case <-e.kick:
			if !e.leading.Swap(false) || !e.quietChanged(e.opts.Now()) {
				continue // within a burst, or sent already: the ticker sends it
			}
			tick.Reset(step)
			to = -1
		}
		now := e.opts.Now()
		full := now.Sub(lastFull) >= e.opts.Reevaluate
		if full {
			lastFull = now
		}
		e.publish(now, full)
		e.sink.Turn(to)
	}
}

// PublishAll sends every panel that changed since the last publication
// to every client now. Call it before Run, not beside it.
func (e *Engine) PublishAll() {
	e.publish(e.opts.Now(), true)
	e.sink.Turn(-1)
}

// publish sends each screen's changed panels to the sink. With all set,
// every panel is recomputed, not just those with new readings.
func (e *Engine) publish(now time.Time, all bool) {
	for id, b := range *e.books.Load() {
		// Deadlines pass with no message; events that waited in vain for
		// their case reach the panels.
		e.observe(id, b.tick(now), false)
	}
	for _, s := range e.layout.Load().screens {
		e.publishScreen(s, now, all)
	}
}

// publishScreen sends a screen's changed panels (with all, every panel
// recomputed) in one frame, if any changed.
func (e *Engine) publishScreen(s *screen, now time.Time, all bool) {
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

func (p *panel) changed(now time.Time, all bool) (View, bool) {
	p.mu.Lock()
	if !p.dirty && !all {
		p.mu.Unlock()
		return View{}, false
	}
	p.dirty = false
	v := p.viewLocked(now)
	if p.trend != nil {
		// The trend goes to screens when a step begins or a past step
		// changes (late readings, the fill at start); in between they keep
		// the one they have (and the hub keeps it for snapshots), and get
		// the point of the step in progress.
		step := now.UnixNano() / p.trend.step
		past, current := v.History, (*HistPoint)(nil)
		if n := len(past); n > 0 && past[n-1].T.UnixNano()/p.trend.step == step {
			past, current = past[:n-1], &past[n-1]
		}
		key, _ := json.Marshal(past)
		if step != p.trend.shown || !bytes.Equal(key, p.trend.sent) {
			p.trend.shown, p.trend.sent = step, key
		} else {
			v.History, v.HistoryNow = nil, current
		}
	}
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
	p.sentAt.Store(now.UnixNano())
	return v, true
}

func (p *panel) view(now time.Time) View {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.viewLocked(now)
}

// viewLocked evaluates the panel now and renders it.
func (p *panel) viewLocked(now time.Time) View {
	ev := p.evaluate(now)
	return p.render(&ev)
}

// An evaluation is what evaluate found a panel's series to be at one
// moment: all that render needs of them.
type evaluation struct {
	now    time.Time
	single judged        // an ungrouped panel's one series
	groups []judgedGroup // a grouped panel's groups that have a value
	newest int64         // a case panel's newest event
}

// judged is a series' value and the status evaluate gave it.
type judged struct {
	key    string // its alert's key
	x      float64
	ok     bool
	status Status
}

type judgedGroup struct {
	judged
	tags   map[string]string
	newest int64
	g      *group // nil for a case panel's group
}

// evaluate brings the panel's state to now and judges each series: its
// value, its status, the alerts it raises or clears; a group with nothing
// left in its window is forgotten. It is where a view's state changes;
// render then changes nothing.
func (p *panel) evaluate(now time.Time) evaluation {
	ev := evaluation{now: now}
	if caseAggs[p.spec.Agg] {
		p.evaluateCases(&ev)
		return ev
	}
	nowNS := now.UnixNano()
	lo, hi, since, span := p.bounds(nowNS)
	staleBefore := nowNS - int64(p.spec.StaleAfter)
	if p.groups == nil {
		r := p.single.aggregate(lo, hi, since)
		x, ok := r.value(&p.spec, span)
		ok = ok && finite(x)
		key := p.screen + "/" + p.spec.ID
		st := p.assess(&p.alert, key, x, ok, p.single.newest, staleBefore, nowNS, p.emitter(key, nil, x, ok, now))
		ev.single = judged{key: key, x: x, ok: ok, status: st}
		return ev
	}
	ev.groups = make([]judgedGroup, 0, len(p.groups))
	for gk, g := range p.groups {
		r := g.aggregate(lo, hi, since)
		x, ok := r.value(&p.spec, span)
		key := p.screen + "/" + p.spec.ID + "{" + tagString(g.tags) + "}"
		if !ok || !finite(x) {
			// Nothing left in its window: forget the group, and clear
			// its alert.
			if g.alert.status != "" && g.alert.status != StatusOK {
				p.emitter(key, g.tags, 0, false, now)(g.alert.status, StatusOK)
			}
			delete(p.groups, gk)
			continue
		}
		st := p.assess(&g.alert, key, x, true, g.newest, staleBefore, nowNS, p.emitter(key, g.tags, x, true, now))
		p.locate(g)
		ev.groups = append(ev.groups, judgedGroup{judged: judged{key: key, x: x, ok: true, status: st}, tags: g.tags, newest: g.newest, g: g})
	}
	return ev
}

// render is the panel's view as evaluated. It changes nothing.
func (p *panel) render(ev *evaluation) View {
	v := View{
		ID: p.spec.ID, Title: p.spec.Title.String(), Titles: p.spec.Title.Langs(), View: p.spec.View, Place: p.spec.Place,
		Points: p.spec.View == ViewMap && (p.spec.Position != nil || p.spec.Stations != ""), Overlay: p.spec.Overlay, Agg: p.spec.Agg, Window: FormatDuration(p.spec.Window),
		Feed: p.spec.Feed, Field: p.spec.Field, Unit: p.unit.String(), Units: p.unit.Langs(), GroupBy: p.spec.GroupBy,
		Thresholds: p.spec.Thresholds, StaleAfter: FormatDuration(p.spec.StaleAfter), Status: StatusNoData,
		Calendar: p.spec.Calendar,
	}
	if label, ok := calendarLabels[p.spec.Calendar]; ok {
		v.Window = label
	}
	if caseAggs[p.spec.Agg] {
		v.Window = ""
		p.renderCases(&v, ev)
		return v
	}
	nowNS := ev.now.UnixNano()
	if p.groups == nil {
		s := ev.single
		v.Status = s.status
		if s.ok {
			x := s.x
			v.Value = &x
			v.Updated = timePtr(p.single.newest)
		}
		if p.alert.status != StatusOK {
			v.Alert = p.mark(s.key)
		}
		if p.trend != nil {
			v.History = p.trend.points(nowNS, &p.spec)
		}
		if p.spec.Calendar != "" {
			// The previous period, whole: yesterday beside today.
			start := periodStart(nowNS, p.spec.Calendar, p.loc)
			prev := periodStart(start-1, p.spec.Calendar, p.loc)
			r := p.single.aggregate(prev-1, prev, prev-1)
			if x, ok := r.value(&p.spec, float64(start-prev)/1e9); ok && finite(x) {
				v.Previous = &x
			}
		}
		return v
	}
	if newest := p.renderGroups(&v, ev.groups); len(v.Groups) > 0 && newest <= nowNS-int64(p.spec.StaleAfter) {
		v.Status = StatusStale
	}
	return v
}

// renderGroups fills v's groups as evaluated, in the panel's order, and,
// when there are any, v's status (the worst live group's: a stale group
// does not hide a live one in trouble) and the time of their newest
// reading, which it returns.
func (p *panel) renderGroups(v *View, groups []judgedGroup) (newest int64) {
	v.Groups = make([]GroupView, 0, len(groups))
	worst := StatusOK
	for _, jg := range groups {
		gv := GroupView{Tags: jg.tags, Value: jg.x, Status: jg.status, Updated: timePtr(jg.newest)}
		if jg.g != nil {
			p.place(&gv, jg.g)
		}
		if jg.status != StatusOK {
			gv.Alert = p.mark(jg.key)
		}
		v.Groups = append(v.Groups, gv)
		newest = max(newest, jg.newest)
		if jg.status != StatusStale && jg.status.Rank() < worst.Rank() {
			worst = jg.status
		}
	}
	p.orderGroups(v)
	if len(v.Groups) > 0 {
		v.Status = worst
		v.Updated = timePtr(newest)
	}
	return newest
}

func (p *panel) orderGroups(v *View) {
	if p.spec.Top > 0 {
		topGroups(v.Groups)
		v.Groups = v.Groups[:min(p.spec.Top, len(v.Groups))]
	} else {
		sortGroups(v.Groups)
	}
}

// emitter returns what tells the panel's Alerts of a status change.
func (p *panel) emitter(key string, tags map[string]string, x float64, ok bool, now time.Time) func(from, to Status) {
	return p.emitterOf(key, tags, x, ok, nil, now)
}

// emitterOf is emitter for an alert about cases: it names them.
func (p *panel) emitterOf(key string, tags map[string]string, x float64, ok bool, cases []string, now time.Time) func(from, to Status) {
	return func(from, to Status) {
		if p.alerts == nil {
			return
		}
		ev := Event{Key: key, Screen: p.screen, Panel: p.spec.ID, Title: p.spec.Title.String(), Tags: tags, Status: to, From: from, Time: now.UTC(), Cases: cases}
		if ok {
			ev.Value = &x
		}
		if th := p.spec.Thresholds; th != nil {
			ev.Below = th.Below
			switch to {
			case StatusWarn:
				ev.Threshold = th.Warn
			case StatusCrit:
				ev.Threshold = th.Crit
			}
		}
		p.alerts.Alert(ev)
	}
}

func (p *panel) mark(key string) *Mark {
	if p.alerts == nil {
		return nil
	}
	return p.alerts.Mark(key)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func timePtr(ns int64) *time.Time {
	t := time.Unix(0, ns).UTC()
	return &t
}

// Touch marks a panel to be published again (its alert was acknowledged).
func (e *Engine) Touch(screenID, panelID string) {
	for _, s := range e.layout.Load().screens {
		if s.spec.ID != screenID {
			continue
		}
		for _, p := range s.panels {
			if p.spec.ID == panelID {
				p.mu.Lock()
				p.dirty = true
				p.mu.Unlock()
			}
		}
	}
}

// Exists tells whether a screen has a panel.
func (e *Engine) Exists(screenID, panelID string) bool {
	for _, s := range e.layout.Load().screens {
		if s.spec.ID != screenID {
			continue
		}
		for _, p := range s.panels {
			if p.spec.ID == panelID {
				return true
			}
		}
	}
	return false
}

// position keeps a station's newest position from its reading's fields,
// when both are numbers in range.
func (g *group) position(pos *Position, pt *feed.Point) {
	lon, ok1 := pt.Field(pos.Lon)
	lat, ok2 := pt.Field(pos.Lat)
	if !ok1 || !ok2 {
		return
	}
	x, ok1 := feed.Number(lon)
	y, ok2 := feed.Number(lat)
	if ok1 && ok2 && x >= -180 && x <= 180 && y >= -90 && y <= 90 {
		g.pos, g.hasPos = [2]float64{x, y}, true
	}
}

// position is where a map panel's group is drawn, and false for nowhere:
// from its readings, else from the stations file by the value of the last
// group_by tag.
func (p *panel) position(g *group) ([2]float64, bool) {
	if p.spec.View != ViewMap {
		return [2]float64{}, false
	}
	switch {
	case g.hasPos:
		return g.pos, true
	case p.spec.StationPos != nil:
		st, ok := p.spec.StationPos[g.tags[p.spec.GroupBy[len(p.spec.GroupBy)-1]]]
		return [2]float64{st.Lon, st.Lat}, ok
	}
	return [2]float64{}, false
}

// locate looks a group's position up on the panel's map when it moved.
func (p *panel) locate(g *group) {
	pos, ok := p.position(g)
	if !ok || p.geo == nil || (g.looked && g.located == pos) {
		return
	}
	_, g.onMap = p.geo.Locate(pos[0], pos[1])
	g.located, g.looked = pos, true
}

// place gives a map panel's group its position, off the map when locate
// found it on none of the map's features.
func (p *panel) place(gv *GroupView, g *group) {
	pos, ok := p.position(g)
	if !ok {
		return
	}
	gv.Pos = &pos
	if p.geo != nil {
		gv.OffMap = !g.onMap
	}
}

// sameMap reports whether two loaded maps are the same file: a reload
// loads the map again, and its panels keep their values.
func sameMap(a, b *citymap.Map) bool {
	return a == b || a != nil && b != nil && a.Sum == b.Sum
}
