package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// Shared keeps what every instance of a cluster must know alike: users,
// tokens and their revocation, sessions and the key of device cookies
// (internal/cluster). Put publishes a record and applies it here once the
// cluster has it; Watch calls fn with every record applied, this
// instance's and others'; Healthy says whether this instance hears every
// change.
type Shared interface {
	Put(kind, key string, value any) error
	Watch(kind string, fn func(key string, value []byte))
	Healthy() bool
	// Known lists the keys of kind the cluster has a record of, deleted
	// ones included.
	Known(kind string) map[string]bool
	// ForgetDeleted has the cluster forget the deleted records of kind
	// once their deletion is older than after.
	ForgetDeleted(kind string, after time.Duration)
}

// Record kinds in the cluster.
const (
	sharedUser    = "user"
	sharedToken   = "token"
	sharedSession = "session"
	sharedKey     = "auth"
	deviceKeyName = "device-key"
)

// ErrUnverifiable is a token or session presented to an instance that does
// not hear the cluster: it cannot know whether they were revoked, so it
// lets nothing in on them (docs/scaling.md).
var ErrUnverifiable = errors.New("this instance cannot reach the cluster to verify credentials: try another instance")

// sessionRecord is a session as the cluster keeps it.
type sessionRecord struct {
	User    string    `json:"user"`
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

// change is one record to make: value nil deletes it.
type change struct {
	kind, key string
	value     any
}

// commit makes changes: through the cluster when one is shared (applied
// here by Watch once the cluster has them; nothing is changed when it
// cannot be reached), else here and in auth.json.
func (m *Manager) commit(cs ...change) error {
	if m.shared != nil {
		for _, c := range cs {
			if err := m.shared.Put(c.kind, c.key, c.value); err != nil {
				return err
			}
		}
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	save := false
	for _, c := range cs {
		m.applyLocked(c.kind, c.key, c.value)
		save = save || c.kind != sharedSession // sessions live in memory
	}
	if !save {
		return nil
	}
	return m.save()
}

// noAdminLeft reports whether, with user name made u (nil: removed),
// no way in as administrator would be left. The caller holds mu.
func (m *Manager) noAdminLeft(name string, u *User) bool {
	if m.bootstrap != "" {
		return false
	}
	if u != nil && u.Role == Admin && !u.Disabled {
		return false
	}
	for n, o := range m.users {
		if n != name && o.Role == Admin && !o.Disabled {
			return false
		}
	}
	return true
}

// applyLocked makes one record true here. The caller holds mu.
func (m *Manager) applyLocked(kind, key string, value any) {
	switch kind {
	case sharedUser:
		prev := m.users[key]
		u, _ := value.(*User)
		if u == nil {
			delete(m.users, key)
			if prev != nil {
				m.endSessionsLocked(key)
			}
			return
		}
		m.users[key] = u
		if prev != nil && (prev.Hash != u.Hash || prev.Role != u.Role || u.Disabled) {
			m.endSessionsLocked(key)
		}
	case sharedToken:
		t, _ := value.(*Token)
		if t == nil {
			return // tokens are revoked, never deleted
		}
		found := false
		for i, old := range m.tokens {
			if old.ID == t.ID {
				t.LastUsed, t.LastFrom = old.LastUsed, old.LastFrom
				m.tokens[i], found = t, true
			}
		}
		if !found {
			m.tokens = append(m.tokens, t)
		}
		if t.Revoked != nil {
			delete(m.byHash, t.Hash)
			m.announceLocked("token:" + t.ID)
		} else {
			m.byHash[t.Hash] = t
		}
	case sharedSession:
		r, _ := value.(*sessionRecord)
		if r == nil {
			if s := m.sessions[key]; s != nil {
				delete(m.sessions, key)
				m.announceLocked("user:" + s.user)
			}
			return
		}
		if m.opts.Now().Sub(r.Created) > m.opts.SessionMax {
			return // over everywhere: a record the sweep has not yet deleted
		}
		s := m.sessions[key]
		if s == nil {
			s = &session{user: r.User, csrf: r.CSRF, created: r.Created}
			m.sessions[key] = s
		}
		if r.Seen.After(s.seen) {
			s.seen = r.Seen
		}
		s.published = r.Seen
	case sharedKey:
		if k, ok := value.([]byte); ok && key == deviceKeyName && len(k) == 32 {
			m.deviceKey = k
		}
	}
}

// Share keeps users, tokens, sessions and the device key in the cluster
// from now on. With seed (the instance hears the cluster, so it knows all
// the cluster holds), what this instance holds and the cluster has no
// record of, deleted ones included, is put there: its auth.json, when the
// first instance joins. Then the cluster's records are applied here, and
// auth.json mirrors them.
func (m *Manager) Share(s Shared, seed bool) error {
	held := map[string]map[string]bool{}
	for _, kind := range []string{sharedUser, sharedToken, sharedKey} {
		held[kind] = s.Known(kind)
	}
	m.mu.Lock()
	var seeds []change
	for name, u := range m.users {
		if !held[sharedUser][name] {
			c := *u
			seeds = append(seeds, change{sharedUser, name, &c})
		}
	}
	for _, t := range m.tokens {
		if !held[sharedToken][t.ID] {
			c := *t
			c.LastUsed, c.LastFrom = nil, ""
			seeds = append(seeds, change{sharedToken, t.ID, &c})
		}
	}
	if !held[sharedKey][deviceKeyName] {
		seeds = append(seeds, change{sharedKey, deviceKeyName, base64.StdEncoding.EncodeToString(m.deviceKey)})
	}
	m.mu.Unlock()
	if !seed {
		seeds = nil
	}
	for _, c := range seeds {
		if err := s.Put(c.kind, c.key, c.value); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.shared = s
	m.mu.Unlock()
	s.Watch(sharedUser, func(key string, v []byte) { m.applyShared(sharedUser, key, v, &User{}) })
	s.Watch(sharedToken, func(key string, v []byte) { m.applyShared(sharedToken, key, v, &Token{}) })
	s.Watch(sharedSession, func(key string, v []byte) { m.applyShared(sharedSession, key, v, &sessionRecord{}) })
	// A session is deleted at every sign-out and expiry: its tombstone is
	// forgotten once any record of it would be void anyway (applyShared
	// takes none created longer than SessionMax ago), with an hour for
	// the instances' clocks to differ.
	s.ForgetDeleted(sharedSession, m.opts.SessionMax+time.Hour)
	s.Watch(sharedKey, func(key string, v []byte) {
		var b64 string
		if json.Unmarshal(v, &b64) == nil {
			if k, err := base64.StdEncoding.DecodeString(b64); err == nil {
				m.mu.Lock()
				m.applyLocked(sharedKey, key, k)
				m.dirty = true
				m.mu.Unlock()
			}
		}
	})
	return nil
}

// applyShared applies a record from the cluster (v nil: deleted), decoded
// into into, and mirrors users and tokens in auth.json.
func (m *Manager) applyShared(kind, key string, v []byte, into any) {
	var value any
	if v != nil {
		if err := json.Unmarshal(v, into); err != nil {
			m.log.Error("a cluster record does not decode: left out", "kind", kind, "key", key, "err", err)
			return
		}
		value = into
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applyLocked(kind, key, value)
	if kind != sharedSession {
		if err := m.save(); err != nil {
			m.log.Error("cannot mirror the cluster's users and tokens", "err", err)
		}
	}
}

// verifiable reports whether credentials other than the bootstrap token
// can be checked: always on a lone instance, while it hears the cluster
// in one.
func (m *Manager) verifiable() bool {
	m.mu.Lock()
	s := m.shared
	m.mu.Unlock()
	return s == nil || s.Healthy()
}

// publishSeen tells the cluster a session was used, at most once a minute,
// so that its idle time is the same on every instance.
func (m *Manager) publishSeen(key string, r sessionRecord) {
	m.mu.Lock()
	s := m.shared
	m.mu.Unlock()
	if s != nil {
		if err := s.Put(sharedSession, key, &r); err != nil {
			m.log.Warn("cannot share a session's use", "err", err)
		}
	}
}
