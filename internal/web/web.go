// Package web serves cityscreen's HTTP API, its websocket endpoint and the
// static dashboard. Handler builds the whole route table, in which every
// route declares the least role it needs; each answer is JSON unless it is
// a page, metrics or the websocket.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/auth"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Screens lists the configured screens.
type Screens interface {
	Screens() []panel.ScreenSpec
}

// Feeds finds the configured feeds.
type Feeds interface {
	Feeds() []*feed.Feed
	Feed(id string) *feed.Feed
}

// Playlists lists the configured playlists.
type Playlists interface {
	Playlists() []panel.Playlist
}

// Check is one readiness condition: nil when met, else why not.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps are what the handler serves.
type Deps struct {
	Hub     *hub.Hub
	Screens Screens
	Feeds   Feeds
	Ready   []Check
	// Registry, if set, serves POST/PUT/DELETE /api/feeds (with an admin
	// token only).
	Registry Registry
	// Replayer, if set, serves POST /api/feeds/{id}/rejected/replay.
	Replayer Replayer
	// Previewer, if set, serves GET /api/feeds/preview.
	Previewer Previewer
	// Cases, if set, serves GET /api/cases/{feed}/{id}.
	Cases Cases
	// Histories, if set, serves a panel's history.
	Histories Histories
	// Privacy, if set, gives the personal-data rules in force, for dry runs.
	Privacy func() *feed.Privacy
	// Auditor, if set, records every change made through the API and
	// serves GET /api/audit.
	Auditor Auditor
	// Displays, if set, tells a display's pages to reload on every
	// instance of a cluster, answering how many of this instance's were
	// told; without it, this instance's hub does.
	Displays interface{ ReloadDisplay(id string) int }
	// Playlists, if set, serves GET /api/playlists.
	Playlists Playlists
	// Alerts, if set, serves GET /api/alerts and acknowledgements.
	Alerts *alert.Manager
	// Status, if set, adds details to /readyz (the storage backlog, say).
	Status    func() map[string]any
	Gatherer  prometheus.Gatherer
	Dashboard fs.FS
	Log       *slog.Logger
	// Auth decides who may use each route. Required: without it only the
	// public routes answer.
	Auth *auth.Manager
	// APIRate is how many API requests one client address may make per
	// second; 0 means no limit.
	APIRate int
	// TLS tells that the server speaks HTTPS: cookies are then Secure,
	// and HSTS is sent.
	TLS bool
	// TrustedProxies are the addresses whose Forwarded or X-Forwarded-For
	// is believed; none means the connection's address is the client's.
	TrustedProxies []netip.Prefix
	// PublicOrigin is the origin browsers use (https://screens.example),
	// or "": then a request's own Host is taken for the server's origin.
	PublicOrigin string
	// AllowedOrigins may also open websockets and sign in, exactly.
	AllowedOrigins []string
	// BodyTimeout bounds how long a request (its body too) may take to
	// arrive, websockets aside; 0 means 60s.
	BodyTimeout time.Duration
	// WebsocketsPerClient bounds each client address's open websockets;
	// 0 means no bound.
	WebsocketsPerClient int
}

func init() {
	// The phone summary's manifest, for browsers to offer to install it.
	mime.AddExtensionType(".webmanifest", "application/manifest+json")
}

// Handler returns the route table. Every route declares the least role it
// needs (see routes); the rest is denied.
func Handler(d Deps) http.Handler {
	s := &server{Deps: d, log: d.Log.With("component", "web"), limiter: newLimiter(d.APIRate)}
	mux := http.NewServeMux()
	api := http.NewServeMux() // the API, to answer 404 and 405 for it
	for _, rt := range s.routes() {
		h := s.guard(rt)
		if rt.Pattern == "GET /ws" {
			h = s.limit(h) // connection attempts count against the API rate
		}
		if strings.Contains(rt.Pattern, " /api/") {
			api.Handle(rt.Pattern, h)
		} else {
			mux.Handle(rt.Pattern, h)
		}
	}
	apiFallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A route that exists for another method is a 405, not a 404.
		var allow []string
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			other := r.Clone(r.Context())
			other.Method = method
			if _, pattern := api.Handler(other); pattern != "/api/" {
				allow = append(allow, method)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method not allowed: "+r.Method+" "+r.URL.Path)
			return
		}
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/api/", s.limit(api))
	// Unknown API routes answer only to the signed-in.
	api.Handle("/api/", s.guard(Route{Pattern: "/api/", Role: auth.Viewer, Display: true, handler: apiFallback.ServeHTTP}))
	files := http.FileServerFS(noListing{d.Dashboard})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		files.ServeHTTP(w, r)
	})
	return s.realClient(secureHeaders(mux))
}

type server struct {
	Deps
	log     *slog.Logger
	limiter *limiter
	sockets sockets
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	reasons := []string{}
	for _, c := range s.Ready {
		if err := c.Check(ctx); err != nil {
			reasons = append(reasons, c.Name+": "+err.Error())
		}
	}
	status := http.StatusOK
	if len(reasons) > 0 {
		status = http.StatusServiceUnavailable
	}
	body := map[string]any{"ready": len(reasons) == 0, "reasons": reasons}
	if s.Status != nil {
		for k, v := range s.Status() {
			body[k] = v
		}
	}
	writeJSON(w, status, body)
}

type screenItem struct {
	ID     string            `json:"id"`
	Title  string            `json:"title"`
	Titles map[string]string `json:"titles,omitempty"`
}

func (s *server) listScreens(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	out := []screenItem{}
	for _, sc := range s.Screens.Screens() {
		if p.CanSee(sc.ID, s.playlistScreens) {
			out = append(out, screenItem{sc.ID, sc.Title.String(), sc.Title.Langs()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getScreen(w http.ResponseWriter, r *http.Request) {
	if !s.mayShow(w, r, r.PathValue("id")) {
		return
	}
	snap, ok := s.Hub.Snapshot(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no such screen: "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

// getMap answers GET /api/screens/{id}/map: the GeoJSON of the screen's
// map, as its file holds it. The pages fetch it once per screen; the ETag
// lets a reload of the page skip it.
func (s *server) getMap(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.mayShow(w, r, id) {
		return
	}
	for _, sc := range s.Screens.Screens() {
		if sc.ID != id {
			continue
		}
		if sc.Map == nil || sc.Map.Geo == nil {
			writeError(w, http.StatusNotFound, "screen "+id+" has no map")
			return
		}
		data := sc.Map.Geo.Data
		etag := fmt.Sprintf(`"%x"`, sc.Map.Geo.Sum)
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "private, no-cache")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/geo+json")
		w.Write(data)
		return
	}
	writeError(w, http.StatusNotFound, "no such screen: "+id)
}

type feedItem struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Titles is the title by language, when the feed gives one per
	// language.
	Titles   map[string]string `json:"titles,omitempty"`
	Topic    string            `json:"topic"`
	Format   string            `json:"format"`
	Interval feed.Duration     `json:"interval,omitempty"`
	Stats    feed.Stats        `json:"stats"`
	// Subscription: how its readings reach cityscreen, when the Feeds
	// tell (Subscriptions).
	Subscription *ingest.Subscription `json:"subscription,omitempty"`
}

// Subscriptions, when the Feeds implement it, tell how each feed's
// readings reach cityscreen: its connections and whether the broker took
// its subscription.
type Subscriptions interface {
	Subscription(id string) (ingest.Subscription, bool)
}

// Drops, when the Feeds implement it, tell what the broker reported of
// the messages it dropped because of its limits, and false when that is
// not followed.
type Drops interface {
	BrokerDrops() (ingest.BrokerDrops, bool)
}

// brokerDrops answers GET /api/broker: {"watching": false}, or what the
// broker reported of the messages it dropped because of its limits.
func (s *server) brokerDrops(w http.ResponseWriter, _ *http.Request) {
	type answer struct {
		Watching bool `json:"watching"`
		*ingest.BrokerDrops
	}
	var out answer
	if d, ok := s.Feeds.(Drops); ok {
		if drops, watching := d.BrokerDrops(); watching {
			out = answer{true, &drops}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) listFeeds(w http.ResponseWriter, _ *http.Request) {
	out := []feedItem{}
	subs, _ := s.Feeds.(Subscriptions)
	for _, f := range s.Feeds.Feeds() {
		spec := f.Spec()
		item := feedItem{spec.ID, spec.Title.String(), spec.Title.Langs(), spec.Topic, spec.Format, spec.Interval, f.Stats(), nil}
		if subs != nil {
			if sub, ok := subs.Subscription(spec.ID); ok {
				item.Subscription = &sub
			}
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) rejected(w http.ResponseWriter, r *http.Request) {
	f := s.Feeds.Feed(r.PathValue("id"))
	if f == nil {
		writeError(w, http.StatusNotFound, "no such feed: "+r.PathValue("id"))
		return
	}
	// Raw payloads leave the server here: who read them is recorded.
	s.audit(r, "data.read", "feed "+f.ID()+" rejected messages", "ok", "")
	writeJSON(w, http.StatusOK, f.Rejected())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// secureHeaders keeps pages to their own origin: no framing, no sniffing,
// scripts and connections from the server only.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// isUnavailable reports whether err is a service that is away (the
// cluster's broker, say): the change was not made, and may be tried again.
func isUnavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}
