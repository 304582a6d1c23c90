package app

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Filling panels from InfluxDB at start: the longest it may delay serving,
// and the most readings read back per feed.
const (
	fillTimeout    = 10 * time.Second
	fillCatchUp    = 5 * time.Second
	fillMaxPerFeed = 2_000_000
	// fillSettle is added to influx.flush_interval as the time the storing
	// instances take to write what reached them before a full stream was
	// subscribed.
	fillSettle = time.Second
	// caseFillMargin is how much older than the newest event of a case
	// book restored from disk the fill reads back: events that reached
	// InfluxDB but not the book before a crash, with times a little out
	// of order.
	caseFillMargin = 10 * time.Minute
)

// fillPanels gives the panels the readings InfluxDB holds for their
// windows, before the first live message is taken and the first screen
// served, so that no screen starts blank after a restart and the values
// equal those of a server that ran throughout. What the write-ahead log
// still holds is forwarded first (for up to fillCatchUp), so that it is
// read back too. Without InfluxDB the panels start from live data.
func (a *App) fillPanels(parent context.Context) {
	timeout := fillTimeout
	if a.partials != nil {
		timeout += partialLateness // the wait for late readings before the cut
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	begun := time.Now()
	var seen func(feed.Point) bool
	if a.gate != nil {
		// The full stream is subscribed and held, and this instance's
		// storing connections (if any) take what the broker kept for them.
		// Readings that reached the storing instances before the
		// subscription are written within their flush interval: wait for
		// that, then read InfluxDB up to now, leaving out what the stream
		// brought.
		for !a.allConnected() && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-time.After(a.cfg.Influx.FlushInterval + fillSettle):
		}
		seen = a.gate.Seen
		if a.partials != nil {
			// Readings from the cut on come in the partials: wait until
			// those before it, late ones too, are in InfluxDB, and leave
			// the rest out.
			a.partials.subscribed(time.Now()) // if the cluster was not heard at start: from now
			cut := a.partials.Cut()
			for time.Now().Before(cut.Add(partialLateness+a.cfg.Influx.FlushInterval+fillSettle)) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			cases := map[string]bool{}
			for _, f := range a.cfg.AllFeeds() {
				cases[f.Measurement] = cases[f.Measurement] || f.Cases != nil
			}
			seen = func(pt feed.Point) bool {
				if cases[pt.Measurement] {
					return a.gate.Seen(pt)
				}
				return !pt.Time.Before(cut)
			}
		}
	}
	catchUp, cancelCatchUp := context.WithTimeout(ctx, fillCatchUp)
	caught := a.store.CaughtUp(catchUp)
	cancelCatchUp()
	if !caught {
		a.log.Warn("panels start from live data and what InfluxDB has: the write-ahead log could not be forwarded in time")
	}
	now := time.Now() // the readings up to here come from InfluxDB
	spans := map[string]time.Duration{}
	for _, s := range a.engine.Screens() {
		for _, p := range s.Panels {
			spans[p.Feed] = max(spans[p.Feed], p.Window)
			if p.Calendar != "" {
				spans[p.Feed] = max(spans[p.Feed], 2*p.Window) // and the period before
			}
			if p.History != nil {
				spans[p.Feed] = max(spans[p.Feed], p.History.Span)
			}
		}
	}
	specs := map[string]feed.Spec{}
	for _, f := range a.cfg.AllFeeds() {
		specs[f.ID] = f
		if f.Cases == nil || !a.cfg.Cluster.Serves() {
			continue
		}
		if r := a.engine.CaseRestored(f.ID); r.Whole {
			// The book came back from the state directory: what it may
			// lack is what reached InfluxDB but not the book before the
			// stop, events newer than its newest (or a little older).
			spans[f.ID] = max(spans[f.ID], now.Sub(r.Newest)+caseFillMargin)
		} else {
			// A case feed's open cases are rebuilt from its events of
			// the span it remembers closed cases for.
			spans[f.ID] = max(spans[f.ID], cmp.Or(time.Duration(f.Cases.KeepClosed), 30*24*time.Hour))
		}
	}
	for id, span := range spans {
		measurement := specs[id].Measurement
		if measurement == "" {
			continue // line protocol keeping its own measurements: nothing to ask for
		}
		var batch []feed.Point
		n := 0
		isCase := specs[id].Cases != nil
		full, err := a.store.History(ctx, measurement, now.Add(-span), now, fillMaxPerFeed, func(pt feed.Point) {
			if seen != nil && seen(pt) {
				return
			}
			batch = append(batch, pt)
			n++
			if len(batch) == 1000 && !isCase {
				a.engine.Fill(id, batch)
				batch = batch[:0]
			}
		})
		if isCase && (err != nil || full) {
			// Part of a case feed's events, cut by series rather than by
			// time, would open some cases and leave others' events with no
			// opening: better none, and the cases from live events only.
			if a.engine.CaseRestored(id).Whole {
				a.log.Warn("a case feed's panels start from its book and live events: its events could not all be read back", "feed", id, "read", n, "err", err)
			} else {
				a.log.Warn("a case feed's open cases start from live events only: its events could not all be read back", "feed", id, "read", n, "err", err)
			}
			batch = nil
		}
		if isCase {
			// Case events apply in the order of their time, across all
			// of the feed's series: all of them, sorted, then in batches.
			slices.SortStableFunc(batch, func(x, y feed.Point) int { return x.Time.Compare(y.Time) })
			for len(batch) > 0 {
				k := min(len(batch), 1000)
				a.engine.Fill(id, batch[:k])
				batch = batch[k:]
			}
		}
		if len(batch) > 0 {
			a.engine.Fill(id, batch)
		}
		switch {
		case err != nil:
			a.log.Warn("a feed's panels start from live data only: InfluxDB did not answer", "feed", id, "err", err)
		case full:
			a.log.Warn("a feed's panels were filled with part of their window: too many readings", "feed", id, "readings", n)
		case n > 0:
			a.log.Info("panels filled from InfluxDB", "feed", id, "readings", n, "window", span)
		}
	}
	a.log.Debug("panel fill done", "took", time.Since(begun).Round(time.Millisecond))
}
