package auth

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// SessionCookie is the name of the sign-in cookie.
const SessionCookie = "cityscreen_session"

type session struct {
	user    string
	csrf    string
	created time.Time
	seen    time.Time
	// published is the last use the cluster was told of.
	published time.Time
}

// Logout ends every session of the principal's user ("everywhere") and
// closes their websockets.
func (m *Manager) Logout(p *Principal) error {
	if p == nil || p.Kind != "user" {
		return nil
	}
	m.mu.Lock()
	if m.shared == nil {
		defer m.mu.Unlock()
		m.endSessionsLocked(p.Name)
		return nil
	}
	var cs []change
	for k, s := range m.sessions {
		if s.user == p.Name {
			cs = append(cs, change{sharedSession, k, nil})
		}
	}
	m.mu.Unlock()
	return m.commit(cs...)
}

func (m *Manager) endSessionsLocked(user string) {
	for k, s := range m.sessions {
		if s.user == user {
			delete(m.sessions, k)
		}
	}
	m.announceLocked("user:" + user)
}

// Authenticate finds the principal of a request: a bearer token in the
// Authorization header, the session cookie, or, on the websocket only
// (browsers cannot set headers there), ?token=. It returns nil for an
// anonymous request and an error for credentials that are wrong.
func (m *Manager) Authenticate(r *http.Request, clientAddr string) (*Principal, error) {
	secret, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !bearer && r.URL.Path == "/ws" && r.URL.Query().Has("token") {
		secret, bearer = r.URL.Query().Get("token"), true
	}
	if bearer {
		if !m.verifiable() && !m.isBootstrap(secret) {
			return nil, ErrUnverifiable
		}
		return m.byToken(secret, clientAddr)
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if !m.verifiable() {
			return nil, ErrUnverifiable
		}
		return m.bySession(c.Value)
	}
	return nil, nil
}

// ErrUnknownCredentials is a token or session that is not (or no longer) valid.
var ErrUnknownCredentials = errors.New("unknown, expired or revoked credentials")

// isBootstrap reports whether secret is the bootstrap administrator's
// token, which the configuration gives each instance and no cluster
// revokes.
func (m *Manager) isBootstrap(secret string) bool {
	d := digest(secret)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootstrap != "" && subtle.ConstantTimeCompare([]byte(d), []byte(m.bootstrap)) == 1
}

func (m *Manager) byToken(secret, clientAddr string) (*Principal, error) {
	d := digest(secret)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bootstrap != "" && subtle.ConstantTimeCompare([]byte(d), []byte(m.bootstrap)) == 1 {
		return &Principal{Kind: "bootstrap", Name: "admin-token", ID: "bootstrap", Role: Admin}, nil
	}
	if ParseToken(secret) != nil {
		return nil, ErrUnknownCredentials
	}
	t := m.byHash[d]
	if t == nil {
		return nil, ErrUnknownCredentials
	}
	now := m.opts.Now().UTC()
	t.LastUsed, t.LastFrom, m.dirty = &now, clientAddr, true
	kind := "token"
	if t.Kind == KindDisplay {
		kind = KindDisplay
	}
	return &Principal{Kind: kind, Name: t.Name, ID: t.ID, Role: t.Role, Screens: slices.Clone(t.Screens), Playlists: slices.Clone(t.Playlists)}, nil
}

func (m *Manager) bySession(value string) (*Principal, error) {
	d := digest(value)
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[d]
	if s == nil {
		return nil, ErrUnknownCredentials
	}
	u := m.users[s.user]
	if u == nil || u.Disabled || s.created.Before(u.Changed) || now.Sub(s.seen) > m.opts.SessionIdle || now.Sub(s.created) > m.opts.SessionMax {
		delete(m.sessions, d)
		return nil, ErrUnknownCredentials
	}
	s.seen = now
	if m.shared != nil && now.Sub(s.published) > time.Minute {
		s.published = now
		go m.publishSeen(d, sessionRecord{User: s.user, CSRF: s.csrf, Created: s.created, Seen: now})
	}
	return &Principal{Kind: "user", Name: u.Name, ID: d[:12], Role: u.Role, CSRF: s.csrf}, nil
}

// Watch returns a channel closed when the principal is revoked, disabled,
// deleted or signed out, and a function to stop watching.
func (m *Manager) Watch(p *Principal) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	key := p.watchKey()
	if key == "" {
		return ch, func() {}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watchers[key] == nil {
		m.watchers[key] = map[chan struct{}]struct{}{}
	}
	m.watchers[key][ch] = struct{}{}
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.watchers[key][ch]; ok {
			delete(m.watchers[key], ch)
			if len(m.watchers[key]) == 0 {
				delete(m.watchers, key)
			}
		}
	}
}

// announceLocked closes every watcher of key.
func (m *Manager) announceLocked(key string) {
	for ch := range m.watchers[key] {
		close(ch)
	}
	delete(m.watchers, key)
}
