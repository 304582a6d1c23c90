package panel

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/cases"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Aggregates over a case feed's open cases, as they stand now (no window):
// how many are open, overdue, due within Within, and the oldest's age in
// hours. They group by the cases' tags and by "status".
const (
	AggOpen    = "open"
	AggOverdue = "overdue"
	AggDueSoon = "due_soon"
	AggOldest  = "oldest_age"
)

// caseAggs are the aggregates over open cases.
var caseAggs = map[string]bool{AggOpen: true, AggOverdue: true, AggDueSoon: true, AggOldest: true}

// StatusTag is the pseudo-tag a case panel may group or filter by.
const StatusTag = "status"

// caseBook is one case feed's book, shared by the panels over it.
type caseBook struct {
	spec    feed.CaseSpec
	refused *prometheus.CounterVec // events not applied, by reason

	mu       sync.Mutex
	book     *cases.Book
	store    *cases.Store      // nil: the book is not kept on disk
	restored cases.Restored    // what the store gave back at start
	journal  []cases.Event     // applied in this batch, for the store
	storeErr error             // the store's failure, not yet reported
	newest   int64             // the newest event's time
	pending  map[string][]held // events waiting for their case to open, by case
	pendingN int
	refusals []Refusal // the newest events not applied, oldest first
}

// SetCases gives the engine the case feeds' definitions. A feed whose
// definition is unchanged keeps its book (its open cases); a changed one
// starts anew, as its panels do. With Options.CasesDir, a new book is
// restored from its store there (casestore.go), and the store of a book
// retired or redefined is removed.
func (e *Engine) SetCases(specs map[string]*feed.CaseSpec) {
	old := *e.books.Load()
	next := make(map[string]*caseBook, len(specs))
	for id, spec := range specs {
		if b := old[id]; b != nil && reflect.DeepEqual(b.spec, *spec) {
			next[id] = b
			continue
		}
		b := &caseBook{spec: *spec, refused: e.caseRefused.MustCurryWith(prometheus.Labels{"feed": id})}
		if old[id] != nil {
			old[id].removeStore()
		}
		e.openStore(id, b)
		next[id] = b
	}
	for id, b := range old {
		if next[id] == nil {
			b.removeStore()
		}
	}
	e.books.Store(&next)
	e.attachBooks()
}

// attachBooks points each case panel at its feed's book, and gives each
// book the due_soon spans its panels ask about.
func (e *Engine) attachBooks() {
	books := *e.books.Load()
	horizons := map[string][]time.Duration{}
	for _, s := range e.layout.Load().screens {
		for _, p := range s.panels {
			if !caseAggs[p.spec.Agg] {
				continue
			}
			p.mu.Lock()
			p.book = books[p.spec.Feed]
			p.dirty = true
			p.mu.Unlock()
			if p.spec.Agg == AggDueSoon && !slices.Contains(horizons[p.spec.Feed], p.spec.Within) {
				horizons[p.spec.Feed] = append(horizons[p.spec.Feed], p.spec.Within)
			}
		}
	}
	for id, b := range books {
		hs := horizons[id]
		slices.Sort(hs)
		b.mu.Lock()
		b.book.SetHorizons(hs)
		b.mu.Unlock()
	}
}

// pendingHold is how long an event for a case not yet known waits for
// the event that opens it: events of one case may reach the engine out of
// order (the ingest workers decode in parallel). After it, the event is
// refused and counted. maxPending bounds the events waiting.
const (
	pendingHold = 10 * time.Second
	maxPending  = 100_000
)

// held is an event waiting for its case to open.
type held struct {
	pt      feed.Point
	arrived time.Time
}

// apply applies a case feed's readings to its book, in the order of their
// time, and returns the readings for the panels: each event once the book
// has applied it, closing events with on_time and close_min, reopenings
// with reopened. An event for a case not yet known is held until its case
// opens (then applied in order) or until pendingHold passes.
func (b *caseBook) apply(points []feed.Point, now time.Time) []feed.Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	sorted := slices.Clone(points)
	slices.SortStableFunc(sorted, func(x, y feed.Point) int { return x.Time.Compare(y.Time) })
	out := make([]feed.Point, 0, len(sorted))
	for _, pt := range sorted {
		out = b.applyOne(out, pt, now, false)
	}
	b.record()
	return out
}

// fill applies readings read back from storage at start, as apply does,
// except that an event the book already holds (restored from its store)
// is given to the panels with what it told when it was applied.
func (b *caseBook) fill(points []feed.Point, now time.Time) []feed.Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]feed.Point, 0, len(points))
	for _, pt := range points {
		out = b.applyOne(out, pt, now, true)
	}
	b.record()
	return out
}

// applyOne applies one event and appends what the panels get of it to
// out: nothing for a duplicate, which changes nothing. Filling, an event
// the book holds already is recounted (cases.Book.Recount).
func (b *caseBook) applyOne(out []feed.Point, pt feed.Point, now time.Time, filling bool) []feed.Point {
	e := cases.EventOf(&b.spec, &pt)
	r, err := b.book.Apply(e)
	if filling && err == nil && (r.Outcome == cases.Late || r.Outcome == cases.Duplicate) {
		if rr, ok := b.book.Recount(e); ok {
			r = rr
		} else if r.Outcome == cases.Duplicate {
			r.Outcome = cases.Late // read back once: the panels count it
		}
	} else if err == nil && r.Outcome != cases.Late {
		b.journal = append(b.journal, e)
	}
	b.newest = max(b.newest, pt.Time.UnixNano())
	switch {
	case err != nil && b.pendingN < maxPending && (errors.Is(err, cases.ErrUnknownCase) || errors.Is(err, cases.ErrClosedUnknown)):
		if b.pending == nil {
			b.pending = map[string][]held{}
		}
		b.pending[e.Case] = append(b.pending[e.Case], held{pt, now})
		b.pendingN++
		return out
	case err != nil:
		b.refuse(&pt, err, now)
		return append(out, pt)
	case r.Outcome == cases.Duplicate:
		return out
	}
	switch r.Outcome {
	case cases.Closed:
		pt.Fields = append(slices.Clone(pt.Fields),
			feed.Field{Key: cases.FieldOnTime, Value: boolValue(r.OnTime)},
			feed.Field{Key: cases.FieldCloseMin, Value: floatValue(r.Took.Minutes())},
			feed.Field{Key: cases.FieldReopened, Value: boolValue(false)})
	case cases.Reopened:
		pt.Fields = append(slices.Clone(pt.Fields), feed.Field{Key: cases.FieldReopened, Value: boolValue(true)})
	}
	out = append(out, pt)
	if r.Outcome == cases.Opened || r.Outcome == cases.Reopened {
		// The events that waited for this case, in their order.
		if waiting := b.pending[e.Case]; len(waiting) > 0 {
			delete(b.pending, e.Case)
			b.pendingN -= len(waiting)
			slices.SortStableFunc(waiting, func(x, y held) int { return x.pt.Time.Compare(y.pt.Time) })
			for _, h := range waiting {
				out = b.applyOne(out, h.pt, h.arrived, filling)
			}
		}
	}
	return out
}

// Refusal is a case event the book did not apply, with why. The event
// itself is stored like every reading; this says why it changed no case.
type Refusal struct {
	Time   time.Time `json:"time"` // the event's own time
	Case   string    `json:"case"`
	Status string    `json:"status"`
	Reason string    `json:"reason"`
	Seen   time.Time `json:"seen"` // when it was refused
}

// keepRefusals is how many refusals each case feed keeps, the newest.
const keepRefusals = 1000

func (b *caseBook) refuse(pt *feed.Point, err error, now time.Time) {
	reason := "unknown_case"
	if errors.Is(err, cases.ErrClosedUnknown) {
		reason = "closing_unknown_case"
	}
	b.refused.WithLabelValues(reason).Inc()
	e := cases.EventOf(&b.spec, pt)
	b.refusals = append(b.refusals, Refusal{Time: pt.Time.UTC(), Case: e.Case, Status: e.Status, Reason: err.Error(), Seen: now.UTC()})
	if len(b.refusals) > keepRefusals {
		b.refusals = slices.Delete(b.refusals, 0, len(b.refusals)-keepRefusals)
	}
}

// Refusals are a case feed's newest refused events, newest first.
func (e *Engine) Refusals(feedID string) ([]Refusal, bool) {
	b := (*e.books.Load())[feedID]
	if b == nil {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.refusals)
	slices.Reverse(out)
	return out, true
}

// tick moves the book's clock, and returns the held events whose case did
// not open in time: refused, and given to the panels as they are.
func (b *caseBook) tick(now time.Time) []feed.Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.book.Tick(now)
	var out []feed.Point
	for id, waiting := range b.pending {
		kept := waiting[:0]
		for _, h := range waiting {
			if now.Sub(h.arrived) < pendingHold {
				kept = append(kept, h)
				continue
			}
			b.refuse(&h.pt, fmt.Errorf("%w: no event opened it within %s", cases.ErrUnknownCase, pendingHold), now)
			b.pendingN--
			out = append(out, h.pt)
		}
		if len(kept) == 0 {
			delete(b.pending, id)
		} else {
			b.pending[id] = kept
		}
	}
	return out
}

// caseGroup is a group of a case panel, kept for its alert.
type caseGroup struct {
	tags  map[string]string
	alert alertState
}

// caseValues are a case panel's values by group key, with each group's
// tags; for overdue, also the IDs of each group's overdue cases, most
// overdue first, at most MaxAlertCases.
func (p *panel) caseValues() (vals map[string]float64, tags map[string]map[string]string, ids map[string][]string, newest int64) {
	b := p.book
	b.mu.Lock()
	defer b.mu.Unlock()
	vals, tags = map[string]float64{}, map[string]map[string]string{}
	contrib := map[string][]*cases.Group{} // an overdue panel's book groups, by panel group
	now := b.book.Now()
	keyOf := func(ts []feed.Tag, status string) (string, bool) {
		if !caseMatches(p.spec.Filter, ts, status) {
			return "", false
		}
		key := ""
		for _, k := range p.spec.GroupBy {
			v, _ := caseTag(ts, status, k)
			key += k + "=" + v + ","
		}
		if _, ok := tags[key]; !ok {
			gt := map[string]string{}
			for _, k := range p.spec.GroupBy {
				gt[k], _ = caseTag(ts, status, k)
			}
			tags[key] = gt
		}
		return key, true
	}
	soon := slices.Index(b.book.Horizons(), p.spec.Within)
	b.book.Groups(func(g *cases.Group) {
		key, ok := keyOf(g.Tags, g.Status)
		if !ok {
			return
		}
		switch p.spec.Agg {
		case AggOpen:
			vals[key] += float64(g.Open)
		case AggDueSoon:
			if soon >= 0 {
				vals[key] += float64(g.Soon[soon])
			}
		case AggOverdue:
			vals[key] += float64(g.Overdue)
			if g.Overdue > 0 && p.spec.Thresholds != nil {
				contrib[key] = append(contrib[key], g)
			}
		case AggOldest:
			vals[key] = max(vals[key], now.Sub(g.Oldest).Hours())
		}
	})
	// The IDs an overdue alert carries: the first of each book group
	// that makes up the panel's group, merged. The cost is the groups,
	// not the cases overdue.
	ids = map[string][]string{}
	for key, gs := range contrib {
		var cs []*cases.Case
		for _, g := range gs {
			n := 0
			g.OverdueCases(func(c *cases.Case) bool {
				cs = append(cs, c)
				n++
				return n < MaxAlertCases
			})
		}
		slices.SortFunc(cs, func(a, b *cases.Case) int { return cmp.Or(cmp.Compare(a.Due, b.Due), cmp.Compare(a.ID, b.ID)) })
		for _, c := range cs[:min(len(cs), MaxAlertCases)] {
			ids[key] = append(ids[key], c.ID)
		}
	}
	return vals, tags, ids, b.newest
}

// evaluateCases judges a case panel's values as the book stands: one value
// (0 when no case counts: that is a value, not missing data), or one
// group per combination of group_by values that has cases; it raises,
// refreshes and clears their alerts, and forgets groups left with none.
func (p *panel) evaluateCases(ev *evaluation) {
	if p.book == nil {
		return
	}
	now := ev.now
	nowNS := now.UnixNano()
	staleBefore := nowNS - int64(p.spec.StaleAfter)
	vals, tags, ids, newest := p.caseValues()
	ev.newest = newest
	refresh := func(key string, st *alertState, x float64, cases []string) {
		if r, ok := p.alerts.(Refresher); ok && st.status != StatusOK && st.status != "" {
			r.Refresh(key, x, cases)
		}
	}
	if len(p.spec.GroupBy) == 0 {
		x := vals[""]
		key := p.screen + "/" + p.spec.ID
		st := p.assess(&p.alert, key, x, true, newest, staleBefore, nowNS, p.emitterOf(key, nil, x, true, ids[""], now))
		refresh(key, &p.alert, x, ids[""])
		ev.single = judged{key: key, x: x, ok: true, status: st}
		return
	}
	if p.caseGroups == nil {
		p.caseGroups = map[string]*caseGroup{}
	}
	for gk, g := range p.caseGroups {
		if _, ok := vals[gk]; !ok {
			// No case left in the group: clear its alert, forget it.
			key := p.screen + "/" + p.spec.ID + "{" + tagString(g.tags) + "}"
			if g.alert.status != "" && g.alert.status != StatusOK {
				p.emitter(key, g.tags, 0, false, now)(g.alert.status, StatusOK)
			}
			delete(p.caseGroups, gk)
		}
	}
	ev.groups = make([]judgedGroup, 0, len(vals))
	for gk, x := range vals {
		g := p.caseGroups[gk]
		if g == nil {
			g = &caseGroup{tags: tags[gk]}
			p.caseGroups[gk] = g
		}
		key := p.screen + "/" + p.spec.ID + "{" + tagString(g.tags) + "}"
		st := p.assess(&g.alert, key, x, true, newest, staleBefore, nowNS, p.emitterOf(key, g.tags, x, true, ids[gk], now))
		refresh(key, &g.alert, x, ids[gk])
		ev.groups = append(ev.groups, judgedGroup{judged: judged{key: key, x: x, ok: true, status: st}, tags: g.tags, newest: newest})
	}
}

// renderCases is a case panel's view as evaluateCases judged it.
func (p *panel) renderCases(v *View, ev *evaluation) {
	if p.book == nil {
		return
	}
	if p.spec.View == ViewList {
		v.Cases = p.caseRows()
	}
	if len(p.spec.GroupBy) == 0 {
		x := ev.single.x
		v.Status = ev.single.status
		v.Value = &x
		if ev.newest > 0 {
			v.Updated = timePtr(ev.newest)
		}
		if p.alert.status != StatusOK {
			v.Alert = p.mark(ev.single.key)
		}
		return
	}
	p.renderGroups(v, ev.groups) // each group's newest is the book's
}

func boolValue(b bool) lineprotocol.Value { return lineprotocol.BoolValue(b) }

func floatValue(x float64) lineprotocol.Value {
	v, _ := lineprotocol.FloatValue(x)
	return v
}

// caseRows are a list panel's cases, filtered, at most its rows.
func (p *panel) caseRows() []CaseRow {
	b := p.book
	b.mu.Lock()
	defer b.mu.Unlock()
	rows := []CaseRow{}
	limit := cmp.Or(p.spec.Rows, 20)
	add := func(c *cases.Case) bool {
		if !caseMatches(p.spec.Filter, c.Tags(), c.Status) {
			return true
		}
		rows = append(rows, CaseRow{ID: c.ID, Tags: tagMap(c.Tags()), Status: c.Status, Opened: time.Unix(0, c.Opened).UTC(), Due: time.Unix(0, c.Due).UTC()})
		return len(rows) < limit
	}
	if p.spec.Agg == AggDueSoon {
		b.book.DueWithin(p.spec.Within, add)
	} else {
		b.book.Overdue(add)
	}
	return rows
}

// CaseInfo is one case as the book holds it.
type CaseInfo struct {
	ID      string            `json:"id"`
	Status  string            `json:"status"`
	Tags    map[string]string `json:"tags"`
	Opened  time.Time         `json:"opened"`
	Due     *time.Time        `json:"due,omitempty"`
	Closed  *time.Time        `json:"closed,omitempty"`
	Overdue bool              `json:"overdue"`
	Reopens int               `json:"reopens"`
}

// Case returns a case of a case feed as it stands, if the book holds it
// (open, or closed within keep_closed).
func (e *Engine) Case(feedID, id string) (CaseInfo, bool) {
	b := (*e.books.Load())[feedID]
	if b == nil {
		return CaseInfo{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.book.Case(id)
	if !ok {
		return CaseInfo{}, false
	}
	info := CaseInfo{ID: c.ID, Status: c.Status, Tags: tagMap(c.Tags()), Opened: time.Unix(0, c.Opened).UTC(), Reopens: int(c.Reopens)}
	if c.Due != 0 {
		info.Due = timePtr(c.Due)
		info.Overdue = c.Open() && c.Due < b.book.Now().UnixNano()
	}
	if !c.Open() {
		info.Closed = timePtr(c.ClosedAt)
	}
	return info, true
}

// caseTag is a case's tag, or its status for StatusTag.
func caseTag(tags []feed.Tag, status, key string) (string, bool) {
	if key == StatusTag {
		return status, true
	}
	for _, t := range tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// caseMatches reports whether a case has every value of a panel's
// filter, among its tags and its status.
func caseMatches(filter map[string]string, tags []feed.Tag, status string) bool {
	for k, want := range filter {
		if v, ok := caseTag(tags, status, k); !ok || v != want {
			return false
		}
	}
	return true
}

// tagMap is a case's tags by key, for a page.
func tagMap(tags []feed.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}
