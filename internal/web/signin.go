package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/auth"
)

// maxAuthBody bounds sign-in, setup, user and token requests.
const maxAuthBody = 16 << 10

// readJSON decodes a small JSON body strictly, answering 400 itself.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAuthBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON with the documented keys: "+err.Error())
		return false
	}
	return true
}

// auditAs records an action by p (which may differ from the request's
// principal, as at sign-in).
func (s *server) auditAs(r *http.Request, p *auth.Principal, action, target, outcome, detail string) {
	if s.Auditor == nil {
		return
	}
	if err := s.Auditor.Add(audit.Record{Actor: p.Actor(), Client: r.RemoteAddr, Action: action, Target: target, Outcome: outcome, Detail: detail}); err != nil {
		s.log.Error("cannot write the audit log", "action", action, "target", target, "err", err)
	}
}

func (s *server) setupNeeded(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"needed": s.Auth != nil && s.Auth.NeedsSetup()})
}

type setupRequest struct {
	Code     string `json:"code"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// setup creates the first administrator with the one-time code printed at
// start.
func (s *server) setup(w http.ResponseWriter, r *http.Request) {
	if s.Auth == nil {
		writeError(w, http.StatusNotImplemented, errNoAuth.Error())
		return
	}
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "set up with Content-Type: application/json")
		return
	}
	if !s.sameOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden: setup from another site")
		return
	}
	var req setupRequest
	if !readJSON(w, r, &req) {
		return
	}
	if wait := s.limiter.signInWait(clientIP(r)); wait > 0 {
		tooMany(w, wait)
		return
	}
	who := &auth.Principal{Kind: "user", Name: req.User}
	if err := s.Auth.Setup(req.Code, req.User, req.Password); err != nil {
		s.limiter.signInFailed(clientIP(r))
		s.auditAs(r, who, "auth.setup", req.User, "refused", err.Error())
		status := http.StatusBadRequest
		if errors.Is(err, auth.ErrBadSetupCode) {
			status = http.StatusForbidden
		}
		writeError(w, status, err.Error())
		return
	}
	s.auditAs(r, who, "auth.setup", req.User, "ok", "first administrator created")
	s.log.Info("first administrator created", "user", req.User, "client", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, map[string]string{"user": req.User, "role": "admin"})
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// login answers POST /api/login: a session cookie, or 401 after a delay
// that grows with the account's failures, or 429 while locked out.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if s.Auth == nil {
		writeError(w, http.StatusNotImplemented, errNoAuth.Error())
		return
	}
	// No sign-in from another site's page (login CSRF): JSON only, which
	// a form cannot send, and from the server's own origin.
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "sign in with Content-Type: application/json")
		return
	}
	if !s.sameOrigin(r) {
		s.auditAs(r, nil, "auth.signin", "", "refused", "from another site: "+r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "forbidden: sign-in from another site")
		return
	}
	var req loginRequest
	if !readJSON(w, r, &req) {
		return
	}
	who := &auth.Principal{Kind: "user", Name: req.User}
	in := auth.SignIn{User: req.User, Password: req.Password, Addr: clientIP(r)}
	if c, err := r.Cookie(auth.DeviceCookie); err == nil {
		in.Device = c.Value
	}
	out, delay, err := s.Auth.Login(r.Context(), in)
	var locked *auth.LockedError
	switch {
	case errors.Is(err, auth.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case isUnavailable(err):
		s.auditAs(r, who, "auth.signin", req.User, "error", err.Error())
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case errors.As(err, &locked):
		s.auditAs(r, who, "auth.signin", req.User, "refused", err.Error())
		tooMany(w, locked.For)
		return
	case err != nil:
		s.auditAs(r, who, "auth.signin", req.User, "refused", err.Error())
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		unauthorized(w, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: auth.SessionCookie, Value: out.Cookie, Path: "/", HttpOnly: true, Secure: s.TLS,
		SameSite: http.SameSiteStrictMode,
	})
	// Marks this browser as one its user signs in from: failures by
	// others do not lock it out.
	http.SetCookie(w, &http.Cookie{
		Name: auth.DeviceCookie, Value: out.Device, Path: "/api/login", HttpOnly: true, Secure: s.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: int(auth.DeviceLife.Seconds()),
	})
	s.auditAs(r, out.Principal, "auth.signin", req.User, "ok", "")
	writeJSON(w, http.StatusOK, meOf(out.Principal))
}

// isJSON reports whether the request's body is declared JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed sign-ins: try again in %s", wait.Round(time.Second)))
}

func (s *server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.TLS, SameSite: http.SameSiteStrictMode})
}

type meAnswer struct {
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Role    auth.Role `json:"role"`
	Screens []string  `json:"screens,omitempty"`
	CSRF    string    `json:"csrf,omitempty"`
}

func meOf(p *auth.Principal) meAnswer {
	return meAnswer{Kind: p.Kind, Name: p.Name, Role: p.Role, Screens: p.Screens, CSRF: p.CSRF}
}

func (s *server) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, meOf(principal(r)))
}

// logout ends the user's sessions everywhere, with their websockets.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if err := s.Auth.Logout(p); err != nil {
		s.auditAs(r, p, "auth.signout", p.Name, "error", err.Error())
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.clearCookie(w)
	s.auditAs(r, p, "auth.signout", p.Name, "ok", "")
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) listUsers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Auth.Users())
}

type userRequest struct {
	Name     string    `json:"name"`
	Role     auth.Role `json:"role"`
	Password string    `json:"password"`
}

func (s *server) createUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if !readJSON(w, r, &req) {
		return
	}
	err := s.Auth.CreateUser(req.Name, req.Role, req.Password)
	s.answerAuthChange(w, r, "user.create", req.Name, "role "+req.Role.String(), err, http.StatusCreated, map[string]any{"name": req.Name, "role": req.Role})
}

func (s *server) updateUser(w http.ResponseWriter, r *http.Request) {
	var c auth.UserChange
	if !readJSON(w, r, &c) {
		return
	}
	detail := ""
	if c.Role != nil {
		detail += "role " + c.Role.String() + " "
	}
	if c.Password != nil {
		detail += "password changed "
	}
	if c.Disabled != nil {
		detail += fmt.Sprintf("disabled %v", *c.Disabled)
	}
	err := s.Auth.UpdateUser(r.PathValue("name"), c)
	s.answerAuthChange(w, r, "user.update", r.PathValue("name"), detail, err, http.StatusOK, nil)
}

func (s *server) deleteUser(w http.ResponseWriter, r *http.Request) {
	err := s.Auth.DeleteUser(r.PathValue("name"))
	s.answerAuthChange(w, r, "user.delete", r.PathValue("name"), "", err, http.StatusNoContent, nil)
}

// answerAuthChange answers and audits a change to users or tokens.
func (s *server) answerAuthChange(w http.ResponseWriter, r *http.Request, action, target, detail string, err error, okStatus int, body any) {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		s.audit(r, action, target, "refused", err.Error())
		writeError(w, http.StatusNotFound, target+": "+err.Error())
	case errors.Is(err, auth.ErrExists), errors.Is(err, auth.ErrLastAdmin):
		s.audit(r, action, target, "refused", err.Error())
		writeError(w, http.StatusConflict, target+": "+err.Error())
	case isUnavailable(err):
		s.audit(r, action, target, "error", err.Error())
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		s.audit(r, action, target, "refused", err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.audit(r, action, target, "ok", detail)
		s.log.Info("access changed", "action", action, "target", target, "by", principal(r).Actor())
		if okStatus == http.StatusNoContent {
			w.WriteHeader(okStatus)
			return
		}
		if body == nil {
			body = map[string]string{"name": target}
		}
		writeJSON(w, okStatus, body)
	}
}

func (s *server) listTokens(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Auth.Tokens(""))
}

// createToken answers POST /api/tokens with the new token's secret, shown
// this once and never again.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req auth.TokenRequest
	if !readJSON(w, r, &req) {
		return
	}
	exists := func(kind, id string) bool {
		if kind == "playlist" {
			return s.playlistScreens(id) != nil
		}
		for _, sc := range s.Screens.Screens() {
			if sc.ID == id {
				return true
			}
		}
		return false
	}
	secret, t, err := s.Auth.CreateToken(req, principal(r).Actor(), exists)
	if err != nil {
		s.answerAuthChange(w, r, "token.create", req.Name, "", err, 0, nil)
		return
	}
	s.audit(r, "token.create", t.ID, "ok", fmt.Sprintf("%s token %q, role %s, screens %v, playlists %v", t.Kind, t.Name, t.Role, t.Screens, t.Playlists))
	writeJSON(w, http.StatusCreated, struct {
		Secret string `json:"token"`
		auth.Token
	}{secret, t})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.Auth.RevokeToken(r.PathValue("id"), principal(r).Actor())
	s.answerAuthChange(w, r, "token.revoke", r.PathValue("id"), t.Name, err, http.StatusOK, t)
}

type displayItem struct {
	auth.Token
	// Connected is how many of its screens are open now.
	Connected int `json:"connected"`
}

// listDisplays answers GET /api/displays: each display token, the screens
// and playlists it shows, when and from where it last checked in, and
// whether it is connected now.
func (s *server) listDisplays(w http.ResponseWriter, _ *http.Request) {
	out := []displayItem{}
	for _, t := range s.Auth.Tokens(auth.KindDisplay) {
		out = append(out, displayItem{Token: t, Connected: s.Hub.Connected(t.ID)})
	}
	writeJSON(w, http.StatusOK, out)
}

// reloadDisplay answers POST /api/displays/{id}/reload: the display's open
// pages reload (after a dashboard upgrade, say).
func (s *server) reloadDisplay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	found := false
	for _, t := range s.Auth.Tokens(auth.KindDisplay) {
		found = found || t.ID == id
	}
	if !found {
		s.audit(r, "display.reload", id, "refused", "no such display")
		writeError(w, http.StatusNotFound, "no such display: "+id)
		return
	}
	var n int
	if s.Displays != nil {
		n = s.Displays.ReloadDisplay(id)
	} else {
		n = s.Hub.Reload(id)
	}
	s.audit(r, "display.reload", id, "ok", fmt.Sprintf("%d pages told", n))
	writeJSON(w, http.StatusOK, map[string]int{"pages": n})
}

// limiter bounds API requests per client address, and failed sign-in or
// setup attempts per address before the account lockout even applies.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*rate.Limiter
	setups  map[string]*rate.Limiter
	swept   time.Time
}

func newLimiter(perSecond int) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: 2 * perSecond, clients: map[string]*rate.Limiter{}, setups: map[string]*rate.Limiter{}}
}

func (l *limiter) get(m map[string]*rate.Limiter, key string, r rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.swept) > time.Minute {
		// Forget addresses whose bucket is full again.
		for k, lim := range m {
			if lim.Tokens() >= float64(lim.Burst()) {
				delete(m, k)
			}
		}
		l.swept = now
	}
	lim := m[key]
	if lim == nil {
		lim = rate.NewLimiter(r, burst)
		m[key] = lim
	}
	return lim
}

// limit answers 429 to a client over its API rate.
func (s *server) limit(next http.Handler) http.Handler {
	if s.limiter.rate <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.limiter.get(s.limiter.clients, clientIP(r), s.limiter.rate, s.limiter.burst).Allow() {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "too many requests: slow down")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Setup codes are tried at most once a minute per address after a failure
// (they carry 120 bits, so this only spares the log).
func (l *limiter) signInWait(addr string) time.Duration {
	lim := l.get(l.setups, addr, rate.Every(time.Minute), 5)
	r := lim.Reserve()
	d := r.Delay()
	r.Cancel()
	return d
}

func (l *limiter) signInFailed(addr string) {
	l.get(l.setups, addr, rate.Every(time.Minute), 5).Allow()
}

// noListing serves files, and directories only through their index.html:
// no directory listings.
type noListing struct{ fsys fs.FS }

func (n noListing) Open(name string) (fs.File, error) {
	f, err := n.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		idx, err := n.fsys.Open(path.Join(name, "index.html"))
		if err != nil {
			f.Close()
			return nil, fs.ErrNotExist
		}
		idx.Close()
	}
	return f, nil
}
