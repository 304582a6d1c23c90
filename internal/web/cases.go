package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Cases finds a case feed's cases and their events.
type Cases interface {
	// Case is the case as it stands, if it is held.
	Case(feedID, id string) (panel.CaseInfo, bool)
	// CaseEvents are the case's stored events, oldest first.
	CaseEvents(ctx context.Context, feedID, id string) ([]feed.Point, error)
	// Refusals are the feed's newest events that changed no case, and
	// why; false for a feed that is not a case feed.
	Refusals(feedID string) ([]panel.Refusal, bool)
}

// refusals answers GET /api/feeds/{id}/refusals: a case feed's newest
// events that changed no case (a case never opened, say), newest first.
func (s *server) refusals(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.Cases.Refusals(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no case feed "+r.PathValue("id"))
		return
	}
	if rs == nil {
		rs = []panel.Refusal{}
	}
	writeJSON(w, http.StatusOK, rs)
}

// ErrNoCaseFeed is a feed that is not a case feed.
var ErrNoCaseFeed = errors.New("not a case feed")

type caseEvent struct {
	Time   time.Time         `json:"time"`
	Tags   map[string]string `json:"tags"`
	Fields map[string]any    `json:"fields"`
}

// getCase answers GET /api/cases/{feed}/{id}: the case as it stands (null
// once forgotten) and its events from InfluxDB, oldest first.
func (s *server) getCase(w http.ResponseWriter, r *http.Request) {
	feedID, id := r.PathValue("feed"), r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	points, err := s.Cases.CaseEvents(ctx, feedID, id)
	switch {
	case errors.Is(err, ErrNoCaseFeed):
		writeError(w, http.StatusNotFound, "no case feed "+feedID)
		return
	case err != nil:
		s.log.Warn("reading a case's events", "feed", feedID, "err", err)
		writeError(w, http.StatusBadGateway, "the case's events cannot be read from InfluxDB now")
		return
	}
	out := struct {
		Feed   string          `json:"feed"`
		ID     string          `json:"id"`
		Case   *panel.CaseInfo `json:"case"`
		Events []caseEvent     `json:"events"`
	}{Feed: feedID, ID: id, Events: []caseEvent{}}
	if c, ok := s.Cases.Case(feedID, id); ok {
		out.Case = &c
	}
	for _, p := range points {
		ev := caseEvent{Time: p.Time.UTC(), Tags: map[string]string{}, Fields: map[string]any{}}
		for _, t := range p.Tags {
			ev.Tags[t.Key] = t.Value
		}
		for _, f := range p.Fields {
			ev.Fields[f.Key] = f.Value.Interface()
		}
		out.Events = append(out.Events, ev)
	}
	if out.Case == nil && len(out.Events) == 0 {
		writeError(w, http.StatusNotFound, "no case "+id+" in "+feedID)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
