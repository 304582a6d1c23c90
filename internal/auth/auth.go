// Package auth decides who may do what in cityscreen: users with roles and
// argon2id passwords, sign-in sessions, API and display tokens, and the
// bootstrap administrator. Users and tokens are kept in auth.json under the
// state directory (written atomically, mode 0600); of a token only its
// SHA-256 is kept, and sessions live in memory.
//
// Every way in ends in a Principal. Watch lets long-lived connections
// (websockets) learn that their principal was revoked or signed out.
package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// Options configure a Manager.
type Options struct {
	// Path of the users-and-tokens file.
	Path string
	// SessionIdle ends a session unused this long; SessionMax ends any
	// session this long after sign-in.
	SessionIdle, SessionMax time.Duration
	// AccountAttempts failed sign-ins for one account, or AddressAttempts
	// from one address, within LockoutWindow lock it out for Lockout.
	AccountAttempts, AddressAttempts int
	LockoutWindow, Lockout           time.Duration
	// SetupCodeFile is where NewSetupCode writes the one-time code.
	SetupCodeFile string
	// MaxHashing is how many passwords may be checked at once (each takes
	// argon2id's 19 MiB); 0 means the number of CPUs, at least 2.
	MaxHashing int
	// HashWait is how long a sign-in waits for a place to check its
	// password before it is answered ErrBusy; 0 means 3s.
	HashWait time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

type fileData struct {
	Users  []*User  `json:"users"`
	Tokens []*Token `json:"tokens"`
	// DeviceKey signs device cookies (base64), made at the first start.
	DeviceKey string `json:"device_key,omitempty"`
}

// Manager holds users, tokens and sessions. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	users     map[string]*User
	tokens    []*Token
	byHash    map[string]*Token
	sessions  map[string]*session // by digest of the cookie value
	bootstrap string              // digest of the bootstrap admin token
	setupCode string              // digest of the one-time setup code
	watchers  map[string]map[chan struct{}]struct{}
	throttle  *throttle
	dirty     bool // last-used times not yet written
	// saved is the file as this manager last wrote it: a save that would
	// write the same is skipped (a cluster's records, replayed as the
	// instance joins, are each applied with a save, and most are what
	// the file already holds).
	saved []byte
	// known are the addresses each user signed in from, and when.
	known map[string]map[string]time.Time
	// deviceKey signs device cookies; kept in the file.
	deviceKey []byte
	// hashing holds a place for each password being checked.
	hashing chan struct{}
	// shared is the cluster, when several instances share users, tokens
	// and sessions (nil: this instance alone).
	shared Shared
}

// Open loads the users and tokens at opts.Path (none if it does not exist).
func Open(opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxHashing <= 0 {
		opts.MaxHashing = max(runtime.NumCPU(), 2)
	}
	if opts.HashWait <= 0 {
		opts.HashWait = 3 * time.Second
	}
	m := &Manager{
		opts: opts, log: opts.Log.With("component", "auth"),
		users: map[string]*User{}, byHash: map[string]*Token{}, sessions: map[string]*session{},
		watchers: map[string]map[chan struct{}]struct{}{},
		throttle: newThrottle(opts), known: map[string]map[string]time.Time{},
		hashing: make(chan struct{}, opts.MaxHashing),
	}
	m.deviceKey = make([]byte, 32)
	rand.Read(m.deviceKey)
	data, err := os.ReadFile(opts.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.dirty = true // the device key
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("auth: %w", err)
	}
	var fd fileData
	if err := json.Unmarshal(data, &fd); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", opts.Path, err)
	}
	for _, u := range fd.Users {
		m.users[u.Name] = u
	}
	if k, err := base64.StdEncoding.DecodeString(fd.DeviceKey); err == nil && len(k) == 32 {
		m.deviceKey = k
	} else {
		m.dirty = true
	}
	for _, t := range fd.Tokens {
		m.tokens = append(m.tokens, t)
		if t.Revoked == nil {
			m.byHash[t.Hash] = t
		}
	}
	return m, nil
}

// save writes the file atomically. The caller holds mu.
func (m *Manager) save() error {
	fd := fileData{Users: make([]*User, 0, len(m.users)), Tokens: m.tokens, DeviceKey: base64.StdEncoding.EncodeToString(m.deviceKey)}
	for _, name := range m.userNames() {
		fd.Users = append(fd.Users, m.users[name])
	}
	if fd.Tokens == nil {
		fd.Tokens = []*Token{}
	}
	data, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return err
	}
	if bytes.Equal(data, m.saved) {
		m.dirty = false
		return nil
	}
	if err := writeAtomic(m.opts.Path, data); err != nil {
		return fmt.Errorf("auth: saving %s: %w", m.opts.Path, err)
	}
	m.saved, m.dirty = data, false
	return nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data)
}

// Flush writes pending last-used times.
func (m *Manager) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirty {
		return nil
	}
	return m.save()
}

// Sweep forgets expired sessions and old sign-in failures.
func (m *Manager) Sweep() {
	now := m.opts.Now()
	m.mu.Lock()
	var over []change
	for k, s := range m.sessions {
		if now.Sub(s.seen) > m.opts.SessionIdle || now.Sub(s.created) > m.opts.SessionMax {
			delete(m.sessions, k)
			over = append(over, change{sharedSession, k, nil})
		}
	}
	shared := m.shared != nil
	m.mu.Unlock()
	m.throttle.sweep(now)
	if shared && len(over) > 0 {
		// The cluster forgets them too (any instance may say so first).
		if err := m.commit(over...); err != nil {
			m.log.Warn("cannot end expired sessions in the cluster", "err", err)
		}
	}
}
