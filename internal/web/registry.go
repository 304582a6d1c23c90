package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/ingest"
)

// Errors a Registry returns, mapped to HTTP statuses.
var (
	ErrExists   = errors.New("already exists")        // 409
	ErrNotFound = errors.New("not found")             // 404
	ErrConflict = errors.New("conflicts with config") // 409
)

// Registry changes the feeds registered through the API. A definition with
// problems is answered with them and changes nothing.
type Registry interface {
	Register(spec feed.Spec) ([]feed.Problem, error)
	Update(id string, spec feed.Spec) ([]feed.Problem, error)
	Retire(id string) error
}

// Replayer runs a feed's rejected messages through its current definition.
type Replayer interface {
	Replay(id string) (stored, rejected int, err error)
}

func (s *server) replay(w http.ResponseWriter, r *http.Request) {
	stored, rejected, err := s.Replayer.Replay(r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		s.audit(r, "feed.replay", r.PathValue("id"), "refused", err.Error())
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.audit(r, "feed.replay", r.PathValue("id"), "error", err.Error())
		s.log.Error("replaying rejected messages", "feed", r.PathValue("id"), "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.audit(r, "feed.replay", r.PathValue("id"), "ok", fmt.Sprintf("stored %d, still rejected %d", stored, rejected))
		s.log.Info("rejected messages replayed", "feed", r.PathValue("id"), "stored", stored, "rejected", rejected, "client", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]int{"stored": stored, "rejected": rejected})
	}
}

// Auditor records changes made through the API, durably.
type Auditor interface {
	Add(r audit.Record) error
	Records(n int) ([]audit.Record, error)
}

// audit records an action on the API. A record that cannot be written is
// logged: the change itself has happened.
func (s *server) audit(r *http.Request, action, target, outcome, detail string) {
	if s.Auditor == nil {
		return
	}
	if err := s.Auditor.Add(audit.Record{Actor: principal(r).Actor(), Client: r.RemoteAddr, Action: action, Target: target, Outcome: outcome, Detail: detail}); err != nil {
		s.log.Error("cannot write the audit log", "action", action, "target", target, "err", err)
	}
}

func (s *server) auditList(w http.ResponseWriter, _ *http.Request) {
	rs, err := s.Auditor.Records(1000)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

// Previewer listens on a topic for a while.
type Previewer interface {
	Preview(ctx context.Context, filter string, d time.Duration) ([]ingest.PreviewMessage, error)
}

// preview answers GET /api/feeds/preview?topic=FILTER&seconds=N (1-30,
// default 5): the raw messages seen, to write a definition against.
func (s *server) preview(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("topic")
	if err := ingest.CheckFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, "topic: "+err.Error())
		return
	}
	seconds := 5
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 30 {
			writeError(w, http.StatusBadRequest, "seconds: want a whole number from 1 to 30")
			return
		}
		seconds = n
	}
	s.audit(r, "data.read", "preview of "+filter, "ok", fmt.Sprintf("%d s", seconds))
	msgs, err := s.Previewer.Preview(r.Context(), filter, time.Duration(seconds)*time.Second)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, msgs)
}

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	spec, ok := readSpec(w, r)
	if !ok {
		return
	}
	ps, err := s.Registry.Register(spec)
	s.answerChange(w, r, "feed.register", spec.ID, ps, err, http.StatusCreated)
}

func (s *server) update(w http.ResponseWriter, r *http.Request) {
	spec, ok := readSpec(w, r)
	if !ok {
		return
	}
	ps, err := s.Registry.Update(r.PathValue("id"), spec)
	s.answerChange(w, r, "feed.update", r.PathValue("id"), ps, err, http.StatusOK)
}

func (s *server) retire(w http.ResponseWriter, r *http.Request) {
	err := s.Registry.Retire(r.PathValue("id"))
	if err == nil {
		s.log.Info("feed retired", "feed", r.PathValue("id"), "client", r.RemoteAddr)
		s.audit(r, "feed.retire", r.PathValue("id"), "ok", "")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.answerChange(w, r, "feed.retire", r.PathValue("id"), nil, err, 0)
}

func (s *server) answerChange(w http.ResponseWriter, r *http.Request, action, id string, ps []feed.Problem, err error, okStatus int) {
	switch {
	case len(ps) > 0:
		s.audit(r, action, id, "refused", fmt.Sprintf("%d problems, first: %s", len(ps), ps[0]))
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the feed definition has problems", "problems": ps})
	case errors.Is(err, ErrNotFound):
		s.audit(r, action, id, "refused", err.Error())
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		s.audit(r, action, id, "refused", err.Error())
		writeError(w, http.StatusConflict, err.Error())
	case isUnavailable(err):
		s.audit(r, action, id, "error", err.Error())
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		s.audit(r, action, id, "error", err.Error())
		s.log.Error("changing the feed registry", "feed", id, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.audit(r, action, id, "ok", "")
		s.log.Info("feed changed", "action", action, "feed", id, "client", r.RemoteAddr)
		for _, f := range s.Feeds.Feeds() {
			if f.ID() == id {
				writeJSON(w, okStatus, f.Spec())
				return
			}
		}
		writeJSON(w, okStatus, map[string]string{"id": id})
	}
}

// readSpec reads a feed definition, strictly, from the body.
func readSpec(w http.ResponseWriter, r *http.Request) (feed.Spec, bool) {
	var spec feed.Spec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDryRunBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be a feed definition, with the keys of a feed file: "+err.Error())
		return spec, false
	}
	return spec, true
}
