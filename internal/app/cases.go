package app

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/web"
)

// How case books are kept on disk (panel/casestore.go): their journals
// synced every second; a snapshot every caseSnapshotEvery, or sooner once
// caseSnapshotEvents events were applied since the last, so that a
// restart replays at most that many.
const (
	caseSnapshotEvery  = 5 * time.Minute
	caseSnapshotEvents = 200_000
)

// keepCases keeps the case books on disk until ctx ends.
func (a *App) keepCases(ctx context.Context) {
	sync := time.NewTicker(time.Second)
	defer sync.Stop()
	snap := time.NewTicker(caseSnapshotEvery)
	defer snap.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sync.C:
			a.engine.SyncCases()
			a.engine.SaveCases(caseSnapshotEvents)
		case <-snap.C:
			a.engine.SaveCases(0)
		}
	}
}

// Case is a case feed's case as the panels' book holds it.
func (a *App) Case(feedID, id string) (panel.CaseInfo, bool) { return a.engine.Case(feedID, id) }

// Refusals are a case feed's newest events that changed no case.
func (a *App) Refusals(feedID string) ([]panel.Refusal, bool) { return a.engine.Refusals(feedID) }

// CaseEvents reads a case's events back from InfluxDB, over the span its
// feed remembers closed cases for, oldest first (at most 1,000).
func (a *App) CaseEvents(ctx context.Context, feedID, id string) ([]feed.Point, error) {
	f := a.ingester.Feed(feedID) // as it stands, reloads and the registry included
	if f == nil || f.Spec().Cases == nil {
		return nil, web.ErrNoCaseFeed
	}
	spec := f.Spec()
	now := time.Now()
	span := cmp.Or(time.Duration(spec.Cases.KeepClosed), 30*24*time.Hour)
	var out []feed.Point
	_, err := a.store.HistoryWhere(ctx, spec.Measurement, spec.Cases.ID, id, now.Add(-span), now.Add(time.Minute), 1000, func(p feed.Point) {
		out = append(out, p)
	})
	slices.SortStableFunc(out, func(x, y feed.Point) int { return x.Time.Compare(y.Time) })
	return out, err
}
