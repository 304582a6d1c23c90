package cases

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

// hotline is the 12345 hotline's life: received (受理), dispatched (派单),
// signed for (签收), answered, closed (办结); limits by category.
func hotline() Rules {
	return Rules{
		Statuses: []string{"received", "dispatched", "signed", "answered", "closed"},
		Opening:  []string{"received"},
		Closed:   []string{"closed"},
		Limit: func(tags []Tag) time.Duration {
			for _, t := range tags {
				if t.Key == "category" && t.Value == "heating" {
					return 24 * time.Hour
				}
			}
			return 72 * time.Hour
		},
	}
}

func tags(district, category string) []Tag {
	return []Tag{{Key: "district", Value: district}, {Key: "category", Value: category}}
}

func mustApply(t *testing.T, b *Book, e Event, want Outcome) Result {
	t.Helper()
	r, err := b.Apply(e)
	if err != nil || r.Outcome != want {
		t.Fatalf("Apply(%+v) = %v %v, want %v", e, r.Outcome, err, want)
	}
	return r
}

func totals(b *Book) (open, overdue int, soon []int) {
	soon = make([]int, len(b.horizons))
	b.Groups(func(g *Group) {
		open += g.Open
		overdue += g.Overdue
		for i, n := range g.Soon {
			soon[i] += n
		}
	})
	return open, overdue, soon
}

func TestLifecycle(t *testing.T) {
	b := New(hotline(), []time.Duration{2 * time.Hour}, at(0))
	mustApply(t, b, Event{Case: "A1", Status: "received", Time: at(0), Tags: tags("daoli", "heating")}, Opened)
	mustApply(t, b, Event{Case: "A1", Status: "dispatched", Time: at(10)}, Changed)
	// A duplicate, and a late event, change nothing.
	mustApply(t, b, Event{Case: "A1", Status: "dispatched", Time: at(10)}, Duplicate)
	mustApply(t, b, Event{Case: "A1", Status: "received", Time: at(0)}, Late)
	if c, _ := b.Case("A1"); c.Status != "dispatched" || c.Tags()[0] != (Tag{Key: "category", Value: "heating"}) || c.Due != at(24*60).UnixNano() {
		t.Fatalf("A1 after a late event: %+v", c)
	}
	// Refused: an undeclared status, an unknown case that is not an
	// opening, a closing for a case never seen.
	for _, c := range []struct {
		e    Event
		want error
	}{
		{Event{Case: "A1", Status: "lost", Time: at(11)}, ErrStatus},
		{Event{Case: "B9", Status: "dispatched", Time: at(11)}, ErrUnknownCase},
		{Event{Case: "B9", Status: "closed", Time: at(11)}, ErrClosedUnknown},
		{Event{Case: "", Status: "received", Time: at(11)}, ErrNoCase},
	} {
		if _, err := b.Apply(c.e); !errors.Is(err, c.want) {
			t.Errorf("Apply(%+v) = %v, want %v", c.e, err, c.want)
		}
	}
	// Due soon two hours before its deadline, overdue after it, with no
	// event in between.
	b.Tick(at(21*60 + 59))
	if open, overdue, soon := totals(b); open != 1 || overdue != 0 || soon[0] != 0 {
		t.Fatalf("at 21:59: %d open, %d overdue, %v soon", open, overdue, soon)
	}
	b.Tick(at(22*60 + 1))
	if open, overdue, soon := totals(b); open != 1 || overdue != 0 || soon[0] != 1 {
		t.Fatalf("at 22:01: %d open, %d overdue, %v soon", open, overdue, soon)
	}
	b.Tick(at(24*60 + 1))
	if open, overdue, soon := totals(b); open != 1 || overdue != 1 || soon[0] != 0 {
		t.Fatalf("past the deadline: %d open, %d overdue, %v soon", open, overdue, soon)
	}
	r := mustApply(t, b, Event{Case: "A1", Status: "closed", Time: at(25 * 60)}, Closed)
	if r.OnTime || r.Took != 25*time.Hour {
		t.Fatalf("closed late: %+v", r)
	}
	if open, overdue, _ := totals(b); open != 0 || overdue != 0 {
		t.Fatalf("after closing: %d open, %d overdue", open, overdue)
	}
	// Reopened: a new time limit from the reopening.
	r = mustApply(t, b, Event{Case: "A1", Status: "dispatched", Time: at(26 * 60)}, Reopened)
	if c, _ := b.Case("A1"); r.Reopens != 1 || c.Due != at(50*60).UnixNano() {
		t.Fatalf("reopened: %+v, due %v", r, time.Unix(0, c.Due).UTC())
	}
	r = mustApply(t, b, Event{Case: "A1", Status: "closed", Time: at(27 * 60)}, Closed)
	if !r.OnTime || r.Reopens != 1 {
		t.Fatalf("closed again: %+v", r)
	}
	// Forgotten once closed longer than KeepClosed.
	b.Tick(at(27 * 60).Add(31 * 24 * time.Hour))
	if _, ok := b.Case("A1"); ok || b.Len() != 0 {
		t.Fatal("a case closed 31 days ago is still held")
	}
}

// TestOverdueList: most overdue first, and only the overdue.
func TestOverdueList(t *testing.T) {
	b := New(Rules{Closed: []string{"closed"}}, nil, at(0))
	for i, due := range []int{30, 10, 50, 20, 90} {
		mustApply(t, b, Event{Case: fmt.Sprintf("C%d", i), Status: "open", Time: at(0), Due: at(due), Tags: tags("nangang", "roads")}, Opened)
	}
	b.Tick(at(60))
	var ids []string
	b.Overdue(func(c *Case) bool { ids = append(ids, c.ID); return true })
	if want := []string{"C1", "C3", "C0", "C2"}; !slices.Equal(ids, want) {
		t.Fatalf("overdue %v, want %v", ids, want)
	}
}

// TestAgainstRecount: random events and ticks in random order; after each
// step every group's counts equal a recount from the cases themselves.
func TestAgainstRecount(t *testing.T) {
	rules := hotline()
	horizons := []time.Duration{time.Hour, 6 * time.Hour}
	b := New(rules, horizons, at(0))
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := rules.Statuses
	now := 0
	for step := range 20000 {
		if step == 10000 {
			b.SetHorizons([]time.Duration{30 * time.Minute, 2 * time.Hour, 24 * time.Hour}) // panels changed
		}
		if rng.IntN(10) == 0 {
			now += rng.IntN(120)
			b.Tick(at(now))
		} else {
			e := Event{
				Case:   fmt.Sprintf("K%d", rng.IntN(500)),
				Status: statuses[rng.IntN(len(statuses))],
				Time:   at(now - rng.IntN(30)), // some late
			}
			if rng.IntN(4) == 0 {
				e.Tags = tags([]string{"daoli", "nangang", "songbei"}[rng.IntN(3)], []string{"heating", "roads"}[rng.IntN(2)])
			}
			if rng.IntN(5) == 0 {
				e.Due = at(now + rng.IntN(48*60) - 60)
			}
			b.Apply(e)
		}
		recount(t, b, step)
	}
}

func recount(t *testing.T, b *Book, step int) {
	t.Helper()
	type want struct {
		open, overdue int
		soon          []int
		oldest        int64
	}
	ws := map[groupKey]*want{}
	for _, c := range b.cases {
		if !c.Open() {
			continue
		}
		k := groupKey{c.tags, c.Status}
		w := ws[k]
		if w == nil {
			w = &want{soon: make([]int, len(b.horizons)), oldest: c.Opened}
			ws[k] = w
		}
		w.open++
		w.oldest = min(w.oldest, c.Opened)
		switch {
		case c.Due == 0:
		case c.Due < b.now:
			w.overdue++
		default:
			for i, h := range b.horizons {
				if c.Due < b.now+int64(h) {
					w.soon[i]++
				}
			}
		}
	}
	n := 0
	b.Groups(func(g *Group) {
		n++
		w := ws[groupKey{b.tagSets[tagKey(g.Tags)], g.Status}]
		if w == nil || w.open != g.Open || w.overdue != g.Overdue || w.overdue != g.overdue.Len() || !slices.Equal(w.soon, g.Soon) || w.oldest != g.Oldest.UnixNano() {
			t.Fatalf("step %d: group %v %s holds %d open, %d overdue, %v soon, oldest %v; recount %+v", step, g.Tags, g.Status, g.Open, g.Overdue, g.Soon, g.Oldest, w)
		}
	})
	if n != len(ws) {
		t.Fatalf("step %d: %d groups, recount %d", step, n, len(ws))
	}
}

func tagKey(tags []Tag) string {
	k := ""
	for _, t := range tags {
		k += t.Key + "\x00" + t.Value + "\x00"
	}
	return k
}

// city fills a book with n open cases over a city's districts,
// departments and categories, deadlines spread over three days.
func city(n int) *Book {
	b := New(hotline(), []time.Duration{2 * time.Hour}, at(0))
	districts := []string{"daoli", "nangang", "daowai", "xiangfang", "pingfang", "songbei", "hulan", "acheng", "shuangcheng"}
	categories := []string{"heating", "roads", "water", "noise", "snow", "transport", "housing", "health"}
	for i := range n {
		b.Apply(Event{Case: fmt.Sprintf("HRB%010d", i), Status: "received", Time: at(-i % (3 * 24 * 60)),
			Tags: []Tag{{Key: "district", Value: districts[i%len(districts)]}, {Key: "category", Value: categories[i/7%len(categories)]},
				{Key: "department", Value: fmt.Sprintf("dept-%02d", i/13%30)}}})
	}
	return b
}

// BenchmarkOpenCases reports the memory each open case takes in a book
// of a million (its ID, state, deadline and age indexes, group counts).
func BenchmarkOpenCases(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		book := city(1_000_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(book.Len()), "bytes/case")
		runtime.KeepAlive(book)
	}
}

// BenchmarkTick: a panel tick (the clock advanced one second, then every
// group read) over 10^4, 10^5 and 10^6 open cases: it grows with the groups and
// the cases whose deadline passes, not with the open cases.
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("open=%d", n), func(b *testing.B) {
			book := city(n)
			now := at(0)
			b.ResetTimer()
			for b.Loop() {
				now = now.Add(time.Second)
				book.Tick(now)
				open := 0
				book.Groups(func(g *Group) { open += g.Open })
			}
		})
	}
}

// BenchmarkApply: one status change of an open case in a book of 10^6.
func BenchmarkApply(b *testing.B) {
	book := city(1_000_000)
	i := 0
	now := at(0)
	for b.Loop() {
		now = now.Add(time.Millisecond)
		book.Apply(Event{Case: fmt.Sprintf("HRB%010d", i%1_000_000), Status: "dispatched", Time: now})
		i++
	}
}
