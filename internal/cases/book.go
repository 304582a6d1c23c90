// Package cases keeps citizens' requests (12345 hotline, e Ice City) as
// cases with a life: opened, moved through statuses, due by a deadline,
// closed, sometimes reopened. A Book applies each case's events in the
// order of their own time, so that a late event does not undo a newer one
// and a duplicate changes nothing, and keeps what panels ask of open cases
// (how many, how many overdue or due soon, the oldest) by group, indexed
// by deadline: advancing the clock costs the cases whose deadline it
// passes, not the number of open cases.
//
// A Book is not safe for concurrent use: its owner serialises Apply, Tick
// and the readers.
package cases

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/btree"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Tag is one attribute of a case: district, department, category,
// urgency, channel; a reading's tag.
type Tag = feed.Tag

// Event is one message about a case.
type Event struct {
	Case   string
	Status string
	// Time is the event's own time; events are applied in its order.
	Time time.Time
	// Due is the deadline the event gives, or zero: the case then keeps
	// its deadline, or takes one from the rules' time limits.
	Due time.Time
	// Tags are the case's attributes as the event gives them; an event
	// that gives none keeps the case's.
	Tags []Tag
	// Opened is when the case was opened, for sources whose every event
	// says so (Open311's requested_datetime), or zero. With it, the first
	// event seen of a case opens it at that time whatever its status, so
	// that a case first seen closed is counted closed, from its opening.
	Opened time.Time
}

// Rules say how a feed's statuses work.
type Rules struct {
	// Statuses an event may carry; empty means any.
	Statuses []string
	// Opening are the statuses that may open a case not yet known; empty
	// means any status that does not close.
	Opening []string
	// Closed are the statuses that close a case. An event with another
	// status for a closed case reopens it.
	Closed []string
	// Limit is a case's time limit from its tags (by category and
	// urgency), for cases whose events give no due time; nil or 0 means
	// none: the case is never overdue.
	Limit func(tags []Tag) time.Duration
	// KeepClosed is how long a closed case is remembered, to be reopened
	// and to know its late events; 0 means 30 days.
	KeepClosed time.Duration
}

// Outcome is what an event did.
type Outcome int

// Outcomes.
const (
	Opened    Outcome = iota // a new case
	Changed                  // an open case's status, deadline or tags
	Closed                   // an open case closed
	Reopened                 // a closed case opened again
	Late                     // older than what the case already holds: kept, not applied
	Duplicate                // the same as the newest event applied: nothing changes
)

var outcomeNames = [...]string{"opened", "changed", "closed", "reopened", "late", "duplicate"}

func (o Outcome) String() string { return outcomeNames[o] }

// Result is what Apply did, with what a closure tells.
type Result struct {
	Outcome Outcome
	// For Closed: whether the case closed by its deadline (a case with no
	// deadline is on time), and how long it was open.
	OnTime bool
	Took   time.Duration
	// Reopens of the case so far.
	Reopens int
}

// Errors of Apply. The event is refused and the book is unchanged.
var (
	ErrNoCase        = errors.New("the event names no case")
	ErrStatus        = errors.New("a status the feed does not declare")
	ErrUnknownCase   = errors.New("an event for a case not known, with a status that does not open one")
	ErrClosedUnknown = errors.New("a closing event for a case not known")
)

// Case is a case's current state.
type Case struct {
	ID       string
	Status   string
	tags     *tagSet
	Opened   int64 // unix nanoseconds, the opening event's time
	Due      int64 // 0: none
	Updated  int64 // the newest applied event's time
	ClosedAt int64 // 0 while open
	Reopens  int32
	// The closing before the newest reopening, to recount it after a
	// restart (Recount): its time, and how long the case had been open
	// then, in nanoseconds, negative (-took-1) when it closed late.
	prevClosed, prevTook int64
}

// Tags are the case's attributes.
func (c *Case) Tags() []Tag { return c.tags.tags }

// Open reports whether the case is open.
func (c *Case) Open() bool { return c.ClosedAt == 0 }

// tagSet is one combination of tags, shared by every case that has it.
type tagSet struct {
	key  string
	tags []Tag
}

// Group is the open cases that share their tags and status.
type Group struct {
	Tags   []Tag
	Status string
	// Open cases, of which Overdue are past their deadline and Soon[i]
	// are due within the i-th horizon (not yet overdue).
	Open, Overdue int
	Soon          []int
	// Oldest is the opening time of the group's oldest open case.
	Oldest time.Time

	byOpened *btree.BTreeG[*Case]
	overdue  *btree.BTreeG[*Case] // the group's overdue cases, by deadline
}

// OverdueCases calls fn for the group's overdue cases, most overdue
// first, until fn returns false.
func (g *Group) OverdueCases(fn func(c *Case) bool) { g.overdue.Ascend(fn) }

type groupKey struct {
	tags   *tagSet
	status string
}

// Book holds the cases of one feed.
type Book struct {
	rules    Rules
	opening  map[string]bool
	closed   map[string]bool
	statuses map[string]bool
	strs     map[string]string // interned statuses
	tagSets  map[string]*tagSet

	cases    map[string]*Case
	due      *btree.BTreeG[*Case] // open cases with a deadline, by deadline
	closedQ  *btree.BTreeG[*Case] // closed cases, by closing time, to forget
	groups   map[groupKey]*Group
	horizons []time.Duration
	now      int64 // the clock as of the last Tick
}

func byDue(a, b *Case) bool {
	if a.Due != b.Due {
		return a.Due < b.Due
	}
	return a.ID < b.ID
}

func byOpened(a, b *Case) bool {
	if a.Opened != b.Opened {
		return a.Opened < b.Opened
	}
	return a.ID < b.ID
}

func byClosed(a, b *Case) bool {
	if a.ClosedAt != b.ClosedAt {
		return a.ClosedAt < b.ClosedAt
	}
	return a.ID < b.ID
}

// New returns an empty book whose clock stands at now. Horizons are the
// "due within" spans the panels ask about.
func New(rules Rules, horizons []time.Duration, now time.Time) *Book {
	if rules.KeepClosed == 0 {
		rules.KeepClosed = 30 * 24 * time.Hour
	}
	set := func(ss []string) map[string]bool {
		m := make(map[string]bool, len(ss))
		for _, s := range ss {
			m[s] = true
		}
		return m
	}
	return &Book{
		rules: rules, opening: set(rules.Opening), closed: set(rules.Closed), statuses: set(rules.Statuses),
		strs: map[string]string{}, tagSets: map[string]*tagSet{},
		cases: map[string]*Case{}, due: btree.NewG(32, byDue), closedQ: btree.NewG(32, byClosed),
		groups: map[groupKey]*Group{}, horizons: slices.Clone(horizons), now: now.UnixNano(),
	}
}

// Len is how many cases the book holds, open and remembered closed.
func (b *Book) Len() int { return len(b.cases) }

// Case returns a case by its ID.
func (b *Book) Case(id string) (*Case, bool) {
	c, ok := b.cases[id]
	return c, ok
}

// Apply applies one event.
func (b *Book) Apply(e Event) (Result, error) {
	switch {
	case e.Case == "":
		return Result{}, ErrNoCase
	case len(b.statuses) > 0 && !b.statuses[e.Status]:
		return Result{}, fmt.Errorf("%w: %q", ErrStatus, e.Status)
	}
	t := e.Time.UnixNano()
	closing := b.closed[e.Status]
	c, known := b.cases[e.Case]
	if !known {
		opened := t
		switch {
		case !e.Opened.IsZero() && e.Opened.UnixNano() <= t:
			opened = e.Opened.UnixNano()
		case closing:
			return Result{}, fmt.Errorf("%w: %q (%s)", ErrClosedUnknown, e.Case, e.Status)
		case len(b.opening) > 0 && !b.opening[e.Status]:
			return Result{}, fmt.Errorf("%w: %q (%s)", ErrUnknownCase, e.Case, e.Status)
		}
		c = &Case{ID: e.Case, Status: b.intern(e.Status), tags: b.tagSet(e.Tags), Opened: opened, Updated: t}
		c.Due = b.deadline(e, c)
		b.cases[c.ID] = c
		if closing {
			// First seen closed: counted closed, from its opening.
			c.ClosedAt = t
			b.closedQ.ReplaceOrInsert(c)
			return Result{Outcome: Closed, OnTime: c.Due == 0 || t <= c.Due, Took: time.Duration(t - opened)}, nil
		}
		b.enter(c)
		return Result{Outcome: Opened}, nil
	}
	switch {
	case t < c.Updated:
		return Result{Outcome: Late, Reopens: int(c.Reopens)}, nil
	case t == c.Updated && e.Status == c.Status:
		return Result{Outcome: Duplicate, Reopens: int(c.Reopens)}, nil
	}
	if !c.Open() {
		if closing {
			c.Updated = t // closed again: nothing a panel counts changes
			return Result{Outcome: Duplicate, Reopens: int(c.Reopens)}, nil
		}
		b.closedQ.Delete(c)
		c.prevClosed, c.prevTook = c.ClosedAt, c.ClosedAt-c.Opened
		if c.Due != 0 && c.ClosedAt > c.Due {
			c.prevTook = -c.prevTook - 1
		}
		c.ClosedAt, c.Reopens, c.Opened = 0, c.Reopens+1, t
		c.Status, c.Updated = b.intern(e.Status), t
		if len(e.Tags) > 0 {
			c.tags = b.tagSet(e.Tags)
		}
		c.Due = 0 // a reopened case takes a new time limit from now
		c.Due = b.deadline(e, c)
		b.enter(c)
		return Result{Outcome: Reopened, Reopens: int(c.Reopens)}, nil
	}
	b.leave(c)
	c.Status, c.Updated = b.intern(e.Status), t
	if len(e.Tags) > 0 {
		c.tags = b.tagSet(e.Tags)
	}
	if !e.Due.IsZero() {
		c.Due = e.Due.UnixNano()
	}
	if !closing {
		b.enter(c)
		return Result{Outcome: Changed, Reopens: int(c.Reopens)}, nil
	}
	c.ClosedAt = t
	b.closedQ.ReplaceOrInsert(c)
	return Result{Outcome: Closed, OnTime: c.Due == 0 || t <= c.Due, Took: time.Duration(t - c.Opened), Reopens: int(c.Reopens)}, nil
}

// deadline is the event's due time, else the case's own, else its time
// limit from its opening.
func (b *Book) deadline(e Event, c *Case) int64 {
	switch {
	case !e.Due.IsZero():
		return e.Due.UnixNano()
	case c.Due != 0:
		return c.Due
	case b.rules.Limit != nil:
		if d := b.rules.Limit(c.tags.tags); d > 0 {
			return c.Opened + int64(d)
		}
	}
	return 0
}

// enter counts an open case in its group and indexes its deadline.
func (b *Book) enter(c *Case) {
	g := b.group(c)
	g.Open++
	g.byOpened.ReplaceOrInsert(c)
	if c.Due != 0 {
		b.due.ReplaceOrInsert(c)
		b.count(g, c.Due, 1)
		if c.Due < b.now {
			g.overdue.ReplaceOrInsert(c)
		}
	}
}

// leave undoes enter, before a case changes or closes.
func (b *Book) leave(c *Case) {
	k := groupKey{c.tags, c.Status}
	g := b.groups[k]
	g.Open--
	g.byOpened.Delete(c)
	if c.Due != 0 {
		b.due.Delete(c)
		b.count(g, c.Due, -1)
		g.overdue.Delete(c)
	}
	if g.Open == 0 {
		delete(b.groups, k)
	}
}

// count adds n to the overdue or due-soon counts a deadline falls in.
func (b *Book) count(g *Group, due int64, n int) {
	if due < b.now {
		g.Overdue += n
		return
	}
	for i, h := range b.horizons {
		if due < b.now+int64(h) {
			g.Soon[i] += n
		}
	}
}

func (b *Book) group(c *Case) *Group {
	k := groupKey{c.tags, c.Status}
	g := b.groups[k]
	if g == nil {
		g = &Group{Tags: c.tags.tags, Status: c.Status, Soon: make([]int, len(b.horizons)), byOpened: btree.NewG(8, byOpened), overdue: btree.NewG(8, byDue)}
		b.groups[k] = g
	}
	return g
}

// Tick moves the clock to now: the cases whose deadline it passes become
// overdue, and those it brings within a horizon due soon. Its cost is the
// number of cases whose state changes, whatever the number open. Closed
// cases older than KeepClosed are forgotten. The clock does not go back.
func (b *Book) Tick(now time.Time) {
	n := now.UnixNano()
	if n <= b.now {
		return
	}
	old := b.now
	b.now = n
	// Past their deadline: overdue, and no longer due soon.
	b.due.AscendRange(&Case{Due: old}, &Case{Due: n}, func(c *Case) bool {
		g := b.groups[groupKey{c.tags, c.Status}]
		g.Overdue++
		g.overdue.ReplaceOrInsert(c)
		for i, h := range b.horizons {
			if c.Due < old+int64(h) {
				g.Soon[i]--
			}
		}
		return true
	})
	// Newly within each horizon.
	for i, h := range b.horizons {
		from := max(old+int64(h), n)
		b.due.AscendRange(&Case{Due: from}, &Case{Due: n + int64(h)}, func(c *Case) bool {
			b.groups[groupKey{c.tags, c.Status}].Soon[i]++
			return true
		})
	}
	forget := n - int64(b.rules.KeepClosed)
	for {
		c, ok := b.closedQ.Min()
		if !ok || c.ClosedAt >= forget {
			break
		}
		b.closedQ.DeleteMin()
		delete(b.cases, c.ID)
	}
}

// SetHorizons sets the "due within" spans the book counts for each group
// (Group.Soon, in this order). It recounts every open case once: call it
// when the panels change, not on every tick.
func (b *Book) SetHorizons(hs []time.Duration) {
	if slices.Equal(hs, b.horizons) {
		return
	}
	b.horizons = slices.Clone(hs)
	for _, g := range b.groups {
		g.Soon = make([]int, len(hs))
	}
	b.due.AscendGreaterOrEqual(&Case{Due: b.now}, func(c *Case) bool {
		g := b.groups[groupKey{c.tags, c.Status}]
		for i, h := range b.horizons {
			if c.Due < b.now+int64(h) {
				g.Soon[i]++
			}
		}
		return true
	})
}

// Horizons are the spans SetHorizons set.
func (b *Book) Horizons() []time.Duration { return b.horizons }

// Now is the book's clock.
func (b *Book) Now() time.Time { return time.Unix(0, b.now) }

// Groups calls fn for every group of open cases, with its oldest case's
// opening time filled in. Its cost is the number of groups.
func (b *Book) Groups(fn func(g *Group)) {
	for _, g := range b.groups {
		if c, ok := g.byOpened.Min(); ok {
			g.Oldest = time.Unix(0, c.Opened)
		}
		fn(g)
	}
}

// DueWithin calls fn for the open cases due within d of the clock and not
// yet overdue, soonest first, until fn returns false. Its cost is the
// cases it calls fn for.
func (b *Book) DueWithin(d time.Duration, fn func(c *Case) bool) {
	b.due.AscendRange(&Case{Due: b.now}, &Case{Due: b.now + int64(d)}, fn)
}

// Overdue calls fn for the overdue cases, most overdue first, until fn
// returns false.
func (b *Book) Overdue(fn func(c *Case) bool) {
	b.due.AscendLessThan(&Case{Due: b.now}, fn)
}

// intern shares one copy of each status.
func (b *Book) intern(s string) string {
	if v, ok := b.strs[s]; ok {
		return v
	}
	b.strs[s] = s
	return s
}

// tagSet shares one copy of each combination of tags, sorted by key.
func (b *Book) tagSet(tags []Tag) *tagSet {
	sorted := slices.Clone(tags)
	slices.SortFunc(sorted, func(x, y Tag) int { return strings.Compare(x.Key, y.Key) })
	var sb strings.Builder
	for _, t := range sorted {
		sb.WriteString(t.Key)
		sb.WriteByte(0)
		sb.WriteString(t.Value)
		sb.WriteByte(0)
	}
	key := sb.String()
	if s, ok := b.tagSets[key]; ok {
		return s
	}
	s := &tagSet{key: key, tags: sorted}
	b.tagSets[key] = s
	return s
}

// Recount gives what an event the book applied before (it is restored
// from a snapshot or journal, and the event is read back from storage)
// told when it was applied: the case's newest closing, the one before
// its newest reopening, or that reopening. It reports false for any other
// event; among them, closings of a case reopened twice or more since.
func (b *Book) Recount(e Event) (Result, bool) {
	c, ok := b.cases[e.Case]
	if !ok {
		return Result{}, false
	}
	t := e.Time.UnixNano()
	switch {
	case b.closed[e.Status] && c.ClosedAt == t:
		return Result{Outcome: Closed, OnTime: c.Due == 0 || t <= c.Due, Took: time.Duration(t - c.Opened), Reopens: int(c.Reopens)}, true
	case b.closed[e.Status] && c.Reopens > 0 && c.prevClosed == t:
		took := c.prevTook
		if took < 0 {
			took = -took - 1
		}
		return Result{Outcome: Closed, OnTime: c.prevTook >= 0, Took: time.Duration(took), Reopens: int(c.Reopens) - 1}, true
	case !b.closed[e.Status] && c.Reopens > 0 && c.Opened == t:
		return Result{Outcome: Reopened, Reopens: int(c.Reopens)}, true
	}
	return Result{}, false
}
