package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/auth"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Route is one entry of the route table.
type Route struct {
	Pattern string    // method and path, as http.ServeMux takes them
	Role    auth.Role // the least role; auth.None: anyone
	// Display tells that display tokens may use the route (they see their
	// screens and nothing else).
	Display bool
	handler http.HandlerFunc
}

// Routes lists every route with the role it needs, for documentation and
// the route-by-role test.
func Routes() []Route {
	return (&server{}).routes()
}

func (s *server) routes() []Route {
	metrics := func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}
	return []Route{
		{Pattern: "GET /healthz", Role: auth.None, handler: func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}},
		{Pattern: "GET /readyz", Role: auth.None, handler: s.readyz},
		{Pattern: "GET /api/setup", Role: auth.None, handler: s.setupNeeded},
		{Pattern: "POST /api/setup", Role: auth.None, handler: s.setup},
		{Pattern: "POST /api/login", Role: auth.None, handler: s.login},

		{Pattern: "GET /api/me", Role: auth.Viewer, Display: true, handler: s.me},
		{Pattern: "POST /api/logout", Role: auth.Viewer, handler: s.logout},
		{Pattern: "GET /api/screens", Role: auth.Viewer, Display: true, handler: s.listScreens},
		{Pattern: "GET /api/screens/{id}", Role: auth.Viewer, Display: true, handler: s.getScreen},
		{Pattern: "GET /api/screens/{id}/map", Role: auth.Viewer, Display: true, handler: s.getMap},
		{Pattern: "GET /api/screens/{id}/panels/{panel}/history", Role: auth.Viewer, Display: true, handler: s.needs(s.Histories != nil, s.history)},
		{Pattern: "GET /ws", Role: auth.Viewer, Display: true, handler: s.websocket},
		{Pattern: "GET /api/feeds", Role: auth.Viewer, Display: true, handler: s.listFeeds},
		{Pattern: "GET /api/broker", Role: auth.Viewer, handler: s.brokerDrops},
		{Pattern: "GET /api/playlists", Role: auth.Viewer, Display: true, handler: s.listPlaylists},
		{Pattern: "GET /api/playlists/{id}", Role: auth.Viewer, Display: true, handler: s.getPlaylist},
		{Pattern: "GET /metrics", Role: auth.Viewer, handler: metrics},
		{Pattern: "GET /api/alerts", Role: auth.Viewer, Display: true, handler: s.needs(s.Alerts != nil, s.listAlerts)},
		{Pattern: "POST /api/alerts/{id}/ack", Role: auth.Operator, handler: s.needs(s.Alerts != nil, s.ackAlert)},
		{Pattern: "POST /api/alerts/{id}/assign", Role: auth.Operator, handler: s.needs(s.Alerts != nil, s.assignAlert)},
		{Pattern: "POST /api/alerts/{id}/shelve", Role: auth.Operator, handler: s.needs(s.Alerts != nil, s.shelveAlert)},
		{Pattern: "DELETE /api/alerts/{id}/shelve", Role: auth.Operator, handler: s.needs(s.Alerts != nil, s.unshelveAlert)},
		{Pattern: "POST /api/alerts/{id}/resolve", Role: auth.Operator, handler: s.needs(s.Alerts != nil, s.resolveAlert)},
		{Pattern: "GET /api/cases/{feed}/{id}", Role: auth.Viewer, handler: s.needs(s.Cases != nil, s.getCase)},
		{Pattern: "GET /api/feeds/{id}/refusals", Role: auth.Viewer, handler: s.needs(s.Cases != nil, s.refusals)},

		{Pattern: "GET /api/feeds/{id}/rejected", Role: auth.Engineer, handler: s.rejected},
		{Pattern: "POST /api/feeds/test", Role: auth.Engineer, handler: s.dryRun},
		{Pattern: "GET /api/feeds/preview", Role: auth.Engineer, handler: s.needs(s.Previewer != nil, s.preview)},
		{Pattern: "POST /api/feeds", Role: auth.Engineer, handler: s.needs(s.Registry != nil, s.register)},
		{Pattern: "PUT /api/feeds/{id}", Role: auth.Engineer, handler: s.needs(s.Registry != nil, s.update)},
		{Pattern: "DELETE /api/feeds/{id}", Role: auth.Engineer, handler: s.needs(s.Registry != nil, s.retire)},
		{Pattern: "POST /api/feeds/{id}/rejected/replay", Role: auth.Engineer, handler: s.needs(s.Replayer != nil, s.replay)},

		{Pattern: "GET /api/audit", Role: auth.Admin, handler: s.needs(s.Auditor != nil, s.auditList)},
		{Pattern: "GET /api/users", Role: auth.Admin, handler: s.listUsers},
		{Pattern: "POST /api/users", Role: auth.Admin, handler: s.createUser},
		{Pattern: "PUT /api/users/{name}", Role: auth.Admin, handler: s.updateUser},
		{Pattern: "DELETE /api/users/{name}", Role: auth.Admin, handler: s.deleteUser},
		{Pattern: "GET /api/tokens", Role: auth.Admin, handler: s.listTokens},
		{Pattern: "POST /api/tokens", Role: auth.Admin, handler: s.createToken},
		{Pattern: "DELETE /api/tokens/{id}", Role: auth.Admin, handler: s.revokeToken},
		{Pattern: "GET /api/displays", Role: auth.Admin, handler: s.listDisplays},
		{Pattern: "POST /api/displays/{id}/reload", Role: auth.Admin, handler: s.reloadDisplay},
	}
}

// needs answers 501 when the part a route needs is not in this server.
func (s *server) needs(present bool, h http.HandlerFunc) http.HandlerFunc {
	if present {
		return h
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotImplemented, "not available in this server")
	}
}

type principalKey struct{}

// principal is the request's principal, nil if anonymous.
func principal(r *http.Request) *auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(*auth.Principal)
	return p
}

// clientIP is the address a request came from. cityscreen does not trust
// X-Forwarded-For: behind a proxy, limits apply to the proxy's address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// guard lets a request through to its route only with the route's role:
// 401 without credentials (or with wrong ones), 403 with too small a role,
// with a display token off its screens, or with a session cookie but no
// matching X-CSRF-Token on a change. Refusals to known principals are
// audited.
func (s *server) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *auth.Principal
		if s.Auth != nil {
			var err error
			p, err = s.Auth.Authenticate(r, clientIP(r))
			if errors.Is(err, auth.ErrUnverifiable) && rt.Role > auth.None {
				s.auditAs(r, nil, "access.refused", r.Method+" "+r.URL.Path, "refused", err.Error())
				w.Header().Set("Retry-After", "2")
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			if err != nil && rt.Role > auth.None {
				if _, cerr := r.Cookie(auth.SessionCookie); cerr == nil {
					s.clearCookie(w)
				}
				s.auditAs(r, nil, "access.refused", r.Method+" "+r.URL.Path, "refused", "unknown, expired or revoked credentials")
				unauthorized(w, "unknown, expired or revoked credentials: sign in again")
				return
			}
		}
		if rt.Role > auth.None {
			switch {
			case p == nil:
				unauthorized(w, "authentication required: sign in, or give a token as Authorization: Bearer")
				return
			case p.Role < rt.Role, p.Kind == auth.KindDisplay && !rt.Display:
				s.auditAs(r, p, "access.refused", r.Method+" "+r.URL.Path, "refused", "needs role "+rt.Role.String())
				writeError(w, http.StatusForbidden, "forbidden: this needs the "+rt.Role.String()+" role")
				return
			case p.CSRF != "" && !safeMethod(r.Method) && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(p.CSRF)) != 1:
				s.auditAs(r, p, "access.refused", r.Method+" "+r.URL.Path, "refused", "missing or wrong X-CSRF-Token")
				writeError(w, http.StatusForbidden, "forbidden: a change made with the session cookie needs the X-CSRF-Token header (from GET /api/me)")
				return
			}
		}
		rt.handler(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="cityscreen"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// playlistScreens are the screens of a playlist.
func (s *server) playlistScreens(id string) []string {
	if s.Playlists == nil {
		return nil
	}
	for _, pl := range s.Playlists.Playlists() {
		if pl.ID == id {
			out := make([]string, len(pl.Screens))
			for i, e := range pl.Screens {
				out[i] = e.Screen
			}
			return out
		}
	}
	return nil
}

// mayShow refuses (403, audited) a screen the principal may not see.
func (s *server) mayShow(w http.ResponseWriter, r *http.Request, screen string) bool {
	if p := principal(r); !p.CanSee(screen, s.playlistScreens) {
		s.auditAs(r, p, "access.refused", "screen "+screen, "refused", "not among the display's screens")
		writeError(w, http.StatusForbidden, "forbidden: this display may not show screen "+screen)
		return false
	}
	return true
}

// websocket serves GET /ws for a principal, until the principal is revoked
// or signed out.
func (s *server) websocket(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if !s.mayShow(w, r, r.URL.Query().Get("screen")) {
		return
	}
	if !s.sameOrigin(r) {
		s.auditAs(r, p, "access.refused", "websocket", "refused", "from another site: "+r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "forbidden: a websocket from another site")
		return
	}
	release, ok := s.sockets.take(clientIP(r), s.WebsocketsPerClient)
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many websockets from this address (at most %d)", s.WebsocketsPerClient))
		return
	}
	var gone <-chan struct{}
	stop := func() {}
	if s.Auth != nil {
		gone, stop = s.Auth.Watch(p) // stopped when the client is gone
	}
	tag := ""
	if p != nil && p.Kind == auth.KindDisplay {
		tag = p.ID // so that it can be told to reload, and be seen connected
	}
	s.Hub.ServeWSUntil(w, r, gone, tag, func() { stop(); release() })
}

var errNoAuth = errors.New("sign-in is not available in this server")

// listAlerts answers GET /api/alerts: the active alerts, worst and oldest
// first, then the recently cleared, newest first.
func (s *server) listAlerts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Alerts.List())
}

// maxAlertText bounds an acknowledgement's comment and an assignee.
const maxAlertText = 500

// maxShelve is the longest an alert may be shelved.
const maxShelve = 7 * 24 * time.Hour

// alertRequest reads an operator's action on an alert: its JSON body
// (none at all allowed when optional) and the text in it (what names it
// in the audit log), checked by alertText. It answers and audits a
// refusal itself, and tells false.
func (s *server) alertRequest(w http.ResponseWriter, r *http.Request, action string, body any, optional bool, what string, text *string) bool {
	if (!optional || r.ContentLength != 0) && !readJSON(w, r, body) {
		s.audit(r, action, r.PathValue("id"), "refused", "a body that is not the documented JSON")
		return false
	}
	if text != nil && !alertText(w, *text) {
		s.audit(r, action, r.PathValue("id"), "refused", what+" that is too long or not text")
		return false
	}
	return true
}

// alertAnswer audits an action's outcome and answers it: the alert, 404
// for an alert that is not active, 409 for a hand resolution of one that
// is not stale. detail tells what was done, after the alert's panel.
func (s *server) alertAnswer(w http.ResponseWriter, r *http.Request, action string, a alert.Alert, err error, detail func(a alert.Alert) string) {
	id := r.PathValue("id")
	switch {
	case errors.Is(err, alert.ErrNotStale):
		s.audit(r, action, id, "refused", "not stale")
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.audit(r, action, id, "refused", err.Error())
		writeError(w, http.StatusNotFound, id+": "+err.Error())
	default:
		s.audit(r, action, id, "ok", a.Screen+"/"+a.Panel+detail(a))
		writeJSON(w, http.StatusOK, a)
	}
}

// ackAlert answers POST /api/alerts/{id}/ack, with an optional body
// {"comment": "..."}: who acknowledged it, when and why shows on every
// screen.
func (s *server) ackAlert(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Comment string `json:"comment"`
	}
	if !s.alertRequest(w, r, "alert.ack", &body, true, "a comment", &body.Comment) {
		return
	}
	a, err := s.Alerts.Ack(r.PathValue("id"), principal(r).Actor(), principal(r).DisplayName(), body.Comment)
	s.alertAnswer(w, r, "alert.ack", a, err, func(a alert.Alert) string { return " " + string(a.Status) + commentDetail(body.Comment) })
}

// assignAlert answers POST /api/alerts/{id}/assign {"to": "..."}: who
// must act, a person or a department ("" takes it back).
func (s *server) assignAlert(w http.ResponseWriter, r *http.Request) {
	var body struct {
		To string `json:"to"`
	}
	if !s.alertRequest(w, r, "alert.assign", &body, false, "an assignee", &body.To) {
		return
	}
	a, err := s.Alerts.Assign(r.PathValue("id"), strings.TrimSpace(body.To), principal(r).DisplayName())
	s.alertAnswer(w, r, "alert.assign", a, err, func(a alert.Alert) string { return " to " + a.Assignee })
}

// shelveAlert answers POST /api/alerts/{id}/shelve {"for": "2h",
// "comment": "..."}: the alert is put aside (silenced in Alertmanager, not
// escalated) for that long, at most 7 days.
func (s *server) shelveAlert(w http.ResponseWriter, r *http.Request) {
	var body struct {
		For     string `json:"for"`
		Comment string `json:"comment"`
	}
	if !s.alertRequest(w, r, "alert.shelve", &body, false, "", nil) {
		return
	}
	d, err := time.ParseDuration(body.For)
	if err != nil || d < time.Minute || d > maxShelve {
		s.audit(r, "alert.shelve", r.PathValue("id"), "refused", "a bad time")
		writeError(w, http.StatusBadRequest, "for: a time from 1m to 168h, like 30m or 2h")
		return
	}
	if !alertText(w, body.Comment) {
		s.audit(r, "alert.shelve", r.PathValue("id"), "refused", "a comment that is too long or not text")
		return
	}
	a, err := s.Alerts.Shelve(r.PathValue("id"), time.Now().Add(d), principal(r).DisplayName(), body.Comment)
	s.alertAnswer(w, r, "alert.shelve", a, err, func(alert.Alert) string { return " for " + d.String() + commentDetail(body.Comment) })
}

// resolveAlert answers POST /api/alerts/{id}/resolve {"comment": "..."}:
// a stale alert cleared by hand; 409 for any other.
func (s *server) resolveAlert(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Comment string `json:"comment"`
	}
	if !s.alertRequest(w, r, "alert.resolve", &body, true, "a comment", &body.Comment) {
		return
	}
	a, err := s.Alerts.Resolve(r.PathValue("id"), principal(r).DisplayName(), body.Comment)
	s.alertAnswer(w, r, "alert.resolve", a, err, func(alert.Alert) string { return commentDetail(body.Comment) })
}

// unshelveAlert answers DELETE /api/alerts/{id}/shelve.
func (s *server) unshelveAlert(w http.ResponseWriter, r *http.Request) {
	a, err := s.Alerts.Unshelve(r.PathValue("id"))
	s.alertAnswer(w, r, "alert.unshelve", a, err, func(alert.Alert) string { return "" })
}

// alertText refuses text an operator gives an alert that is too long or
// holds control characters (a log line or a wall is not theirs to break).
func alertText(w http.ResponseWriter, s string) bool {
	if utf8.RuneCountInString(s) > maxAlertText || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("at most %d characters of text, without control characters", maxAlertText))
		return false
	}
	return true
}

func commentDetail(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

func (s *server) listPlaylists(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	out := []panel.Playlist{}
	if s.Playlists != nil {
		for _, pl := range s.Playlists.Playlists() {
			if p.CanPlay(pl.ID) {
				out = append(out, pl)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getPlaylist(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.Playlists != nil {
		for _, pl := range s.Playlists.Playlists() {
			if pl.ID != id {
				continue
			}
			if p := principal(r); !p.CanPlay(id) {
				s.audit(r, "access.refused", "playlist "+id, "refused", "not among the display's playlists")
				writeError(w, http.StatusForbidden, "forbidden: this display may not show playlist "+id)
				return
			}
			writeJSON(w, http.StatusOK, pl)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no such playlist: "+id)
}
