package panel

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/cityscreen/cityscreen/internal/cases"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Case books kept on disk: with Options.CasesDir, each case feed's book is
// kept in CasesDir/<feed> (a cases.Store: snapshots, and a journal of the
// events applied since), so that its cases come back after a crash or a
// restart without reading the feed's history back from InfluxDB.

// openStore gives b its book: restored from its store when one is kept,
// or new.
func (e *Engine) openStore(id string, b *caseBook) {
	rules := cases.RulesOf(&b.spec)
	now := e.opts.Now()
	if e.opts.CasesDir == "" {
		b.book = cases.New(rules, nil, now)
		return
	}
	key, _ := json.Marshal(b.spec) // the definition the book is kept under
	begun := time.Now()
	s, book, r, err := cases.OpenStore(filepath.Join(e.opts.CasesDir, id), key, rules, nil, now)
	if err != nil {
		e.log.Error("a case feed's book is not kept on disk: its cases come back from InfluxDB after a restart", "feed", id, "err", err)
		b.book = cases.New(rules, nil, now)
		return
	}
	b.store, b.book, b.restored = s, book, r
	switch {
	case r.Whole:
		e.log.Info("case book restored", "feed", id, "cases", book.Len(), "snapshot", r.Snapshot, "journal_events", r.Events,
			"newest", r.Newest, "took", time.Since(begun).Round(time.Millisecond))
		if r.Torn > 0 {
			e.log.Warn("a case book's journal ended in a torn record, dropped", "feed", id, "bytes", r.Torn)
		}
	case r.Discarded != "":
		e.log.Warn("a case book on disk was not restored: its cases come back from InfluxDB", "feed", id, "why", r.Discarded)
	}
}

// removeStore closes b's store and removes its files.
func (b *caseBook) removeStore() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store != nil {
		b.store.Remove()
		b.store = nil
	}
}

// record writes the events applied since the last call to the store.
// Called with b.mu held.
func (b *caseBook) record() {
	if b.store != nil && len(b.journal) > 0 {
		if err := b.store.Record(b.journal); err != nil {
			b.storeErr = err
		}
	}
	b.journal = b.journal[:0]
}

// CaseRestored reports what a case feed's book came back with at start:
// whether it is whole, and the newest event it holds.
func (e *Engine) CaseRestored(feedID string) cases.Restored {
	if b := (*e.books.Load())[feedID]; b != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.restored
	}
	return cases.Restored{}
}

// Fill gives the panels readings read back from storage at start (not to
// their rollups: the run that took them stored those). For a case feed
// they are applied to its book in the order given; events the book
// already holds count as they did when first applied.
func (e *Engine) Fill(feedID string, points []feed.Point) {
	if b := (*e.books.Load())[feedID]; b != nil {
		points = b.fill(points, e.opts.Now())
	}
	e.observe(feedID, points, true)
}

// SaveCases takes a snapshot of every case book kept on disk to which
// events were applied since its last (or, with atLeast > 0, of those with
// at least that many), and writes them. Each book is held only while it
// is encoded.
func (e *Engine) SaveCases(atLeast int) error {
	var first error
	for id, b := range *e.books.Load() {
		b.mu.Lock()
		if b.store == nil || b.store.Since() == 0 || b.store.Since() < atLeast {
			b.mu.Unlock()
			continue
		}
		began := time.Now()
		n := b.book.Len()
		write := b.store.Snapshot(b.book)
		held := time.Since(began)
		b.mu.Unlock()
		if err := write(); err != nil {
			e.log.Error("a case book's snapshot was not written: its journal grows until the next", "feed", id, "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		e.log.Debug("case book snapshot", "feed", id, "cases", n, "held", held.Round(time.Millisecond), "took", time.Since(began).Round(time.Millisecond))
	}
	return first
}

// SyncCases writes the case books' journals to disk, and reports a
// store that failed (once: it then keeps nothing, and a restart fills the
// book from InfluxDB).
func (e *Engine) SyncCases() {
	for id, b := range *e.books.Load() {
		b.mu.Lock()
		s, err := b.store, b.storeErr
		b.storeErr = nil
		b.mu.Unlock()
		if err != nil {
			e.log.Error("a case book's journal could not be written: the book is no longer kept on disk, and a restart fills it from InfluxDB", "feed", id, "err", err)
		}
		if s != nil {
			if err := s.Sync(); err != nil {
				e.log.Warn("a case book's journal was not synced", "feed", id, "err", err)
			}
		}
	}
}

// CloseCases closes the case books' stores, after a last snapshot.
func (e *Engine) CloseCases() {
	e.SaveCases(0)
	for _, b := range *e.books.Load() {
		b.mu.Lock()
		if b.store != nil {
			b.store.Close()
			b.store = nil
		}
		b.mu.Unlock()
	}
}
