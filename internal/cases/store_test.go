package cases

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// randomEvent is an event of one of 300 cases, some late, some with tags
// or a due time, as TestAgainstRecount plays them.
func randomEvent(rng *rand.Rand, now int) Event {
	statuses := hotline().Statuses
	e := Event{Case: fmt.Sprintf("K%d", rng.IntN(300)), Status: statuses[rng.IntN(len(statuses))], Time: at(now - rng.IntN(30))}
	if rng.IntN(4) == 0 {
		e.Tags = tags([]string{"daoli", "nangang", "songbei"}[rng.IntN(3)], []string{"heating", "roads"}[rng.IntN(2)])
	}
	if rng.IntN(5) == 0 {
		e.Due = at(now + rng.IntN(48*60) - 60)
	}
	if rng.IntN(10) == 0 {
		e.Opened = at(now - 60)
	}
	return e
}

// sameBooks fails unless two books hold the same cases, in the same
// states, and count the same groups.
func sameBooks(t *testing.T, got, want *Book) {
	t.Helper()
	if got.now != want.now || len(got.cases) != len(want.cases) {
		t.Fatalf("clock %d with %d cases, want %d with %d", got.now, len(got.cases), want.now, len(want.cases))
	}
	for id, w := range want.cases {
		g := got.cases[id]
		if g == nil || g.Status != w.Status || g.tags.key != w.tags.key || g.Opened != w.Opened || g.Due != w.Due ||
			g.Updated != w.Updated || g.ClosedAt != w.ClosedAt || g.Reopens != w.Reopens || g.prevClosed != w.prevClosed || g.prevTook != w.prevTook {
			t.Fatalf("case %s: %+v, want %+v", id, g, w)
		}
	}
	type counts struct {
		open, overdue int
		soon          string
		oldest        time.Time
	}
	groups := func(b *Book) map[string]counts {
		m := map[string]counts{}
		b.Groups(func(g *Group) {
			m[tagKey(g.Tags)+g.Status] = counts{g.Open, g.Overdue, fmt.Sprint(g.Soon), g.Oldest}
		})
		return m
	}
	gg, wg := groups(got), groups(want)
	if fmt.Sprint(gg) != fmt.Sprint(wg) {
		t.Fatalf("groups %v, want %v", gg, wg)
	}
	if got.closedQ.Len() != want.closedQ.Len() || got.due.Len() != want.due.Len() {
		t.Fatalf("indexes: %d closed, %d due; want %d, %d", got.closedQ.Len(), got.due.Len(), want.closedQ.Len(), want.due.Len())
	}
}

// TestSnapshotRoundTrip: a book restored from its snapshot holds the same
// cases and counts, and goes on exactly as the original does.
func TestSnapshotRoundTrip(t *testing.T) {
	horizons := []time.Duration{time.Hour, 6 * time.Hour}
	b := New(hotline(), horizons, at(0))
	rng := rand.New(rand.NewPCG(3, 4))
	now := 0
	play := func(books []*Book, steps int) {
		for range steps {
			if rng.IntN(10) == 0 {
				now += rng.IntN(120)
				for _, b := range books {
					b.Tick(at(now))
				}
				continue
			}
			e := randomEvent(rng, now)
			var first Result
			var firstErr error
			for i, b := range books {
				r, err := b.Apply(e)
				if i == 0 {
					first, firstErr = r, err
				} else if r != first || fmt.Sprint(err) != fmt.Sprint(firstErr) {
					t.Fatalf("%+v: %+v %v on the restored book, %+v %v on the original", e, r, err, first, firstErr)
				}
			}
		}
	}
	play([]*Book{b}, 5000)
	r, err := Restore(b.AppendSnapshot(nil), hotline(), horizons)
	if err != nil {
		t.Fatal(err)
	}
	sameBooks(t, r, b)
	recount(t, r, 0)
	play([]*Book{b, r}, 5000)
	sameBooks(t, r, b)

	// A snapshot with a byte changed is refused, not half read.
	snap := b.AppendSnapshot(nil)
	for _, i := range []int{0, len(snap) / 2, len(snap) - 1} {
		bad := slices.Clone(snap)
		bad[i] ^= 0x40
		if _, err := Restore(bad, hotline(), horizons); err == nil {
			t.Fatalf("a snapshot changed at byte %d was restored", i)
		}
	}
	if _, err := Restore(snap[:len(snap)-9], hotline(), horizons); err == nil {
		t.Fatal("a truncated snapshot was restored")
	}
}

// storeRun applies random events to a store's book, recording them, and
// takes a snapshot every `every` events (0: never), writing it unless
// skipWrite (a crash between the new journal and the snapshot's write).
func storeRun(t *testing.T, s *Store, b *Book, rng *rand.Rand, now *int, events, every int, skipWrite bool) {
	t.Helper()
	for i := range events {
		if rng.IntN(10) == 0 {
			*now += rng.IntN(120)
			b.Tick(at(*now))
		}
		e := randomEvent(rng, *now)
		if _, err := b.Apply(e); err == nil {
			if err := s.Record([]Event{e}); err != nil {
				t.Fatal(err)
			}
		}
		if every > 0 && (i+1)%every == 0 {
			write := s.Snapshot(b)
			if !skipWrite {
				if err := write(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestStoreRestore: a book kept in a store comes back whole after a crash
// (no Close) at any point: journal only, snapshot and journal, a crash
// while a snapshot was written, a torn journal record.
func TestStoreRestore(t *testing.T) {
	key := []byte(`{"closed":["closed"]}`)
	horizons := []time.Duration{2 * time.Hour}
	for _, c := range []struct {
		name      string
		every     int
		skipWrite bool
		torn      bool
		snapshot  uint64 // the snapshot restored from
	}{
		{name: "journal only"},
		{name: "snapshots", every: 700, snapshot: 4},
		{name: "crash before the snapshot is written", every: 700, skipWrite: true},
		{name: "torn record", every: 700, torn: true, snapshot: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(5, 6))
			now := 0
			s, b, r, err := OpenStore(dir, key, hotline(), horizons, at(now))
			if err != nil || r.Whole || b.Len() != 0 {
				t.Fatalf("a new store: %v %+v, %d cases", err, r, b.Len())
			}
			storeRun(t, s, b, rng, &now, 3000, c.every, c.skipWrite)
			if c.torn {
				// Half a record at the journal's end, as a crash mid-write leaves.
				f, err := os.OpenFile(s.path("journal", s.seq), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{40, 1, 2, 3, 4, 5})
				f.Close()
			}
			s2, b2, r2, err := OpenStore(dir, key, hotline(), horizons, at(now))
			if err != nil || !r2.Whole || r2.Snapshot != c.snapshot || (r2.Torn > 0) != c.torn {
				t.Fatalf("restored: %v %+v", err, r2)
			}
			sameBooks(t, b2, b)
			if s2.Since() != r2.Events {
				t.Errorf("after replaying %d events the store counts %d since its snapshot", r2.Events, s2.Since())
			}
			// And it goes on: more events, a restart after a clean close.
			storeRun(t, s2, b2, rng, &now, 1000, 300, false)
			s2.Close()
			_, b3, r3, err := OpenStore(dir, key, hotline(), horizons, at(now))
			if err != nil || !r3.Whole {
				t.Fatalf("restored again: %v %+v", err, r3)
			}
			sameBooks(t, b3, b2)
		})
	}
}

// TestStoreDiscards: a store whose files cannot make the book whole
// starts empty, says why, and leaves no file that a later restart could
// take for whole.
func TestStoreDiscards(t *testing.T) {
	key := []byte(`{"closed":["closed"]}`)
	setup := func(t *testing.T) (string, *Store) {
		dir := t.TempDir()
		s, b, _, err := OpenStore(dir, key, hotline(), nil, at(0))
		if err != nil {
			t.Fatal(err)
		}
		now := 0
		storeRun(t, s, b, rand.New(rand.NewPCG(7, 8)), &now, 2000, 500, false)
		return dir, s
	}
	for _, c := range []struct {
		name  string
		key   string
		spoil func(t *testing.T, s *Store)
	}{
		{name: "definition changed", key: `{"closed":["done"]}`},
		{name: "snapshot corrupt, its journals gone", spoil: func(t *testing.T, s *Store) {
			p := s.path("book", 4)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 1
			os.WriteFile(p, data, 0o600)
		}},
		{name: "snapshot corrupt, no journal", spoil: func(t *testing.T, s *Store) {
			s.Close()
			os.Remove(s.path("journal", 5))
			p := s.path("book", 4)
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-1], 0o600)
		}},
		{name: "a journal missing", spoil: func(t *testing.T, s *Store) {
			write := s.Snapshot(&Book{}) // a new journal, no snapshot written
			_ = write
			s.Record([]Event{{Case: "X", Status: "received", Time: at(1)}})
			os.Remove(s.path("journal", 5))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, s := setup(t)
			if c.spoil != nil {
				c.spoil(t, s)
			}
			k := key
			if c.key != "" {
				k = []byte(c.key)
			}
			s2, b, r, err := OpenStore(dir, k, hotline(), nil, at(100))
			if err != nil || r.Whole || b.Len() != 0 || r.Discarded == "" {
				t.Fatalf("%v %+v, %d cases", err, r, b.Len())
			}
			t.Logf("discarded: %s", r.Discarded)
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 || ents[0].Name() != filepath.Base(s2.path("journal", 1)) {
				t.Fatalf("left %v, want only journal 1", ents)
			}
		})
	}
}

// TestRecount: an event read back after a restore tells what it told when
// applied, for the closing and reopening that the case still shows.
func TestRecount(t *testing.T) {
	b := New(hotline(), nil, at(0))
	mustApply(t, b, Event{Case: "A", Status: "received", Time: at(0), Tags: tags("daoli", "heating")}, Opened)
	closing := Event{Case: "A", Status: "closed", Time: at(25 * 60)} // past its 24 h limit
	want := mustApply(t, b, closing, Closed)
	if got, ok := b.Recount(closing); !ok || got != want || got.OnTime {
		t.Fatalf("Recount(closing) = %+v %v, want %+v", got, ok, want)
	}
	reopening := Event{Case: "A", Status: "received", Time: at(26 * 60)}
	mustApply(t, b, reopening, Reopened)
	if got, ok := b.Recount(closing); !ok || got != want {
		t.Fatalf("Recount(closing) after a reopening = %+v %v, want %+v", got, ok, want)
	}
	mustApply(t, b, Event{Case: "A", Status: "closed", Time: at(27 * 60)}, Closed)
	mustApply(t, b, Event{Case: "A", Status: "received", Time: at(28 * 60)}, Reopened)
	if _, ok := b.Recount(closing); ok {
		t.Fatal("a closing two reopenings ago was recounted")
	}
	if got, ok := b.Recount(Event{Case: "A", Status: "received", Time: at(28 * 60)}); !ok || got.Outcome != Reopened {
		t.Fatalf("Recount(reopening) = %+v %v", got, ok)
	}
	for _, e := range []Event{{Case: "A", Status: "received", Time: at(0)}, {Case: "B", Status: "closed", Time: at(1)}} {
		if r, ok := b.Recount(e); ok {
			t.Fatalf("Recount(%+v) = %+v", e, r)
		}
	}
}

// BenchmarkSnapshot: encoding a book of 10^6 open cases, the time the
// book is held while a snapshot is taken (writing it follows, unheld).
func BenchmarkSnapshot(b *testing.B) {
	book := city(1_000_000)
	var buf []byte
	for b.Loop() {
		buf = book.AppendSnapshot(buf[:0])
	}
	b.ReportMetric(float64(len(buf))/1e6, "MB")
}

// BenchmarkRestore: a book of 10^6 open cases back from its snapshot, as
// a restart reads it.
func BenchmarkRestore(b *testing.B) {
	snap := city(1_000_000).AppendSnapshot(nil)
	for b.Loop() {
		if _, err := Restore(snap, hotline(), []time.Duration{2 * time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
}
