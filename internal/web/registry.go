package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cityscreen/cityscreen/internal/feed"
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
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.log.Error("replaying rejected messages", "feed", r.PathValue("id"), "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("rejected messages replayed", "feed", r.PathValue("id"), "stored", stored, "rejected", rejected, "client", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]int{"stored": stored, "rejected": rejected})
	}
}

// registryWrites guards the routes that change the registry: without an
// admin token configured nobody may change anything (deny by default).
func (s *server) registryWrites(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.AdminToken == "" || s.Registry == nil || s.Replayer == nil {
			writeError(w, http.StatusForbidden, "changing feeds needs an admin token: set CITYSCREEN_ADMIN_TOKEN")
			return
		}
		h(w, r)
	}
}

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	spec, ok := readSpec(w, r)
	if !ok {
		return
	}
	ps, err := s.Registry.Register(spec)
	s.answerChange(w, r, spec.ID, ps, err, http.StatusCreated)
}

func (s *server) update(w http.ResponseWriter, r *http.Request) {
	spec, ok := readSpec(w, r)
	if !ok {
		return
	}
	ps, err := s.Registry.Update(r.PathValue("id"), spec)
	s.answerChange(w, r, spec.ID, ps, err, http.StatusOK)
}

func (s *server) retire(w http.ResponseWriter, r *http.Request) {
	err := s.Registry.Retire(r.PathValue("id"))
	if err == nil {
		s.log.Info("feed retired", "feed", r.PathValue("id"), "client", r.RemoteAddr)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.answerChange(w, r, r.PathValue("id"), nil, err, 0)
}

func (s *server) answerChange(w http.ResponseWriter, r *http.Request, id string, ps []feed.Problem, err error, okStatus int) {
	switch {
	case len(ps) > 0:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the feed definition has problems", "problems": ps})
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.log.Error("changing the feed registry", "feed", id, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("feed registered", "feed", id, "client", r.RemoteAddr)
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
