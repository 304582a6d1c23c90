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
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// SessionCookie is the name of the sign-in cookie.
const SessionCookie = "cityscreen_session"

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
	Log        *slog.Logger
	Now        func() time.Time
}

// User is a person who signs in.
type User struct {
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Hash     string    `json:"hash,omitempty"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled,omitempty"`
}

// Token kinds.
const (
	KindAPI     = "api"
	KindDisplay = "display"
)

// Token is an API or display token; its secret is shown once, at creation.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	Role      Role       `json:"role"`
	Screens   []string   `json:"screens,omitempty"`   // displays: the screens it may show
	Playlists []string   `json:"playlists,omitempty"` // displays: the playlists it may show
	Hash      string     `json:"hash,omitempty"`
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	LastFrom  string     `json:"last_from,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// Principal is who a request comes from.
type Principal struct {
	Kind    string // "user", "token", "display" or "bootstrap"
	Name    string // the user's name or the token's
	ID      string // the token's ID; for a user, the session's
	Role    Role
	Screens []string // for a display: the screens it may show
	// Playlists a display may show (and so their screens).
	Playlists []string
	// CSRF is the session's anti-forgery value, when the request came with
	// the session cookie (and must then repeat it in X-CSRF-Token to
	// change anything).
	CSRF string
}

// DisplayName is how people know the principal: a user's or a token's name,
// "admin-token" for the bootstrap token. Screens show it (who
// acknowledged an alert); the audit log keeps Actor.
func (p *Principal) DisplayName() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.Kind == "bootstrap":
		return "admin-token"
	}
	return p.Name
}

// Actor names the principal in the audit log.
func (p *Principal) Actor() string {
	if p == nil {
		return "anonymous"
	}
	switch p.Kind {
	case "user":
		return "user:" + p.Name
	case "bootstrap":
		return "admin-token"
	default:
		return p.Kind + ":" + p.Name + " (" + p.ID + ")"
	}
}

// CanSee tells whether the principal may see a screen; playlist gives the
// screens of a playlist, for displays bound to playlists.
func (p *Principal) CanSee(screen string, playlist func(id string) []string) bool {
	if p == nil || p.Role < Viewer {
		return false
	}
	if p.Kind != KindDisplay || slices.Contains(p.Screens, screen) {
		return true
	}
	for _, id := range p.Playlists {
		if playlist != nil && slices.Contains(playlist(id), screen) {
			return true
		}
	}
	return false
}

// CanPlay tells whether the principal may show a playlist.
func (p *Principal) CanPlay(playlist string) bool {
	if p == nil || p.Role < Viewer {
		return false
	}
	return p.Kind != KindDisplay || slices.Contains(p.Playlists, playlist)
}

// watchKey is what revocation is announced under.
func (p *Principal) watchKey() string {
	switch p.Kind {
	case "user":
		return "user:" + p.Name
	case "bootstrap":
		return ""
	default:
		return "token:" + p.ID
	}
}

type session struct {
	user    string
	csrf    string
	created time.Time
	seen    time.Time
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
	// known are the addresses each user signed in from, and when.
	known map[string]map[string]time.Time
	// deviceKey signs device cookies; kept in the file.
	deviceKey []byte
	// hashing holds a place for each password being checked.
	hashing chan struct{}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

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
	if err := writeAtomic(m.opts.Path, data); err != nil {
		return fmt.Errorf("auth: saving %s: %w", m.opts.Path, err)
	}
	m.dirty = false
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

func (m *Manager) userNames() []string {
	names := make([]string, 0, len(m.users))
	for n := range m.users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SetBootstrapToken sets the administrator token given through the
// environment or config ("" for none). It is never stored.
func (m *Manager) SetBootstrapToken(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bootstrap = ""
	if token != "" {
		m.bootstrap = digest(token)
	}
}

// EnsureAdmin makes the named user an administrator with this password,
// creating it if needed (the bootstrap password from the environment).
func (m *Manager) EnsureAdmin(name, password string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("auth: %q is not a user name", name)
	}
	if err := CheckPasswordStrength(password); err != nil {
		return fmt.Errorf("auth: the bootstrap admin password: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.users[name]; u != nil && u.Role == Admin && !u.Disabled {
		if ok, _ := CheckPassword(u.Hash, password); ok {
			return nil
		}
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	u := m.users[name]
	if u == nil {
		u = &User{Name: name, Created: m.opts.Now().UTC()}
		m.users[name] = u
	}
	u.Role, u.Hash, u.Disabled = Admin, hash, false
	return m.save()
}

// NeedsSetup tells whether there is no way in yet: no active administrator
// and no bootstrap token.
func (m *Manager) NeedsSetup() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.needsSetupLocked()
}

func (m *Manager) needsSetupLocked() bool {
	if m.bootstrap != "" {
		return false
	}
	for _, u := range m.users {
		if u.Role == Admin && !u.Disabled {
			return false
		}
	}
	return true
}

// NewSetupCode makes a one-time code with which the first administrator
// can be created (POST /api/setup). It is written to SetupCodeFile (mode
// 0600), never to the log, and the file is removed once it is used.
func (m *Manager) NewSetupCode() (string, error) {
	code := newSecret(15)
	if m.opts.SetupCodeFile != "" {
		if err := writeAtomic(m.opts.SetupCodeFile, []byte(code+"\n")); err != nil {
			return "", fmt.Errorf("auth: writing the setup code: %w", err)
		}
	}
	m.mu.Lock()
	m.setupCode = digest(code)
	m.mu.Unlock()
	return code, nil
}

// Errors of sign-in and setup.
var (
	ErrBadCredentials = errors.New("wrong user name or password")
	ErrBadSetupCode   = errors.New("wrong or used setup code")
)

// Setup creates the first administrator with the one-time code. The code
// is checked before the password is hashed: a wrong code costs nothing.
func (m *Manager) Setup(code, name, password string) error {
	if err := validUser(name, password, true); err != nil {
		return err
	}
	m.mu.Lock()
	want := m.setupCode
	ok := want != "" && m.needsSetupLocked() && subtle.ConstantTimeCompare([]byte(digest(code)), []byte(want)) == 1
	m.mu.Unlock()
	if !ok {
		return ErrBadSetupCode
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.setupCode != want || !m.needsSetupLocked() { // used meanwhile
		return ErrBadSetupCode
	}
	m.setupCode = ""
	m.users[name] = &User{Name: name, Role: Admin, Hash: hash, Created: m.opts.Now().UTC()}
	if m.opts.SetupCodeFile != "" {
		os.Remove(m.opts.SetupCodeFile)
	}
	return m.save()
}

func validUser(name, password string, needPassword bool) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("name: %q is not a user name: lower-case letters, digits, '.', '_' and '-', at most 64", name)
	}
	if needPassword || password != "" {
		if err := CheckPasswordStrength(password); err != nil {
			return fmt.Errorf("password: %w", err)
		}
	}
	return nil
}

// LockedError says that sign-in is locked out for a while.
type LockedError struct{ For time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %s", e.For.Round(time.Second))
}

var dummyHash, _ = HashPassword("cityscreen-no-such-user")

// Logout ends every session of the principal's user ("everywhere") and
// closes their websockets.
func (m *Manager) Logout(p *Principal) {
	if p == nil || p.Kind != "user" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endSessionsLocked(p.Name)
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
		return m.byToken(secret, clientAddr)
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return m.bySession(c.Value)
	}
	return nil, nil
}

// ErrUnknownCredentials is a token or session that is not (or no longer) valid.
var ErrUnknownCredentials = errors.New("unknown, expired or revoked credentials")

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
	if u == nil || u.Disabled || now.Sub(s.seen) > m.opts.SessionIdle || now.Sub(s.created) > m.opts.SessionMax {
		delete(m.sessions, d)
		return nil, ErrUnknownCredentials
	}
	s.seen = now
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

// Users lists the users, without their hashes.
func (m *Manager) Users() []User {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]User, 0, len(m.users))
	for _, n := range m.userNames() {
		u := *m.users[n]
		u.Hash = ""
		out = append(out, u)
	}
	return out
}

// ErrNotFound is a user or token that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is a user that exists already.
var ErrExists = errors.New("exists already")

// ErrLastAdmin refuses to remove the last way in as administrator.
var ErrLastAdmin = errors.New("this is the last active administrator")

// CreateUser adds a user.
func (m *Manager) CreateUser(name string, role Role, password string) error {
	if err := validUser(name, password, true); err != nil {
		return err
	}
	if role < Viewer || role > Admin {
		return errors.New("role: want viewer, operator, engineer or admin")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[name] != nil {
		return ErrExists
	}
	m.users[name] = &User{Name: name, Role: role, Hash: hash, Created: m.opts.Now().UTC()}
	return m.save()
}

// UserChange is a change to a user; nil fields stay as they are.
type UserChange struct {
	Role     *Role   `json:"role"`
	Password *string `json:"password"`
	Disabled *bool   `json:"disabled"`
}

// UpdateUser changes a user. A changed password, role or a disabling ends
// the user's sessions.
func (m *Manager) UpdateUser(name string, c UserChange) error {
	var hash string
	if c.Password != nil {
		if err := CheckPasswordStrength(*c.Password); err != nil {
			return fmt.Errorf("password: %w", err)
		}
		var err error
		if hash, err = HashPassword(*c.Password); err != nil {
			return err
		}
	}
	if c.Role != nil && (*c.Role < Viewer || *c.Role > Admin) {
		return errors.New("role: want viewer, operator, engineer or admin")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[name]
	if u == nil {
		return ErrNotFound
	}
	before := *u
	if c.Role != nil {
		u.Role = *c.Role
	}
	if c.Disabled != nil {
		u.Disabled = *c.Disabled
	}
	if m.needsSetupLocked() {
		*u = before
		return ErrLastAdmin
	}
	if hash != "" {
		u.Hash = hash
	}
	if err := m.save(); err != nil {
		*u = before
		return err
	}
	m.endSessionsLocked(name)
	return nil
}

// DeleteUser removes a user and ends its sessions.
func (m *Manager) DeleteUser(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[name]
	if u == nil {
		return ErrNotFound
	}
	delete(m.users, name)
	if m.needsSetupLocked() {
		m.users[name] = u
		return ErrLastAdmin
	}
	if err := m.save(); err != nil {
		m.users[name] = u
		return err
	}
	m.endSessionsLocked(name)
	return nil
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // api (default) or display
	Role      Role     `json:"role"` // displays are always viewers
	Screens   []string `json:"screens"`
	Playlists []string `json:"playlists"`
}

// CreateToken issues a token and returns its secret, the only time it is
// shown, with its record. exists checks a display's screens and playlists
// ("screen" or "playlist", and the ID).
func (m *Manager) CreateToken(req TokenRequest, by string, exists func(kind, id string) bool) (string, Token, error) {
	var problems []string
	if !nameRE.MatchString(req.Name) {
		problems = append(problems, fmt.Sprintf("name: %q is not a token name: lower-case letters, digits, '.', '_' and '-', at most 64", req.Name))
	}
	switch req.Kind {
	case "", KindAPI:
		req.Kind = KindAPI
		if req.Role < Viewer || req.Role > Admin {
			problems = append(problems, "role: want viewer, operator, engineer or admin")
		}
		if len(req.Screens) > 0 || len(req.Playlists) > 0 {
			problems = append(problems, "screens: only display tokens are bound to screens and playlists")
		}
	case KindDisplay:
		if req.Role != None && req.Role != Viewer {
			problems = append(problems, "role: a display token is always a viewer")
		}
		req.Role = Viewer
		if len(req.Screens) == 0 && len(req.Playlists) == 0 {
			problems = append(problems, "screens: a display token needs the screens (or playlists) it may show")
		}
		for i, s := range req.Screens {
			if !exists("screen", s) {
				problems = append(problems, fmt.Sprintf("screens.%d: no screen %q", i, s))
			}
		}
		for i, s := range req.Playlists {
			if !exists("playlist", s) {
				problems = append(problems, fmt.Sprintf("playlists.%d: no playlist %q", i, s))
			}
		}
	default:
		problems = append(problems, fmt.Sprintf("kind: %q: want api or display", req.Kind))
	}
	if len(problems) > 0 {
		return "", Token{}, errors.New(strings.Join(problems, "; "))
	}
	secret := NewToken()
	t := &Token{
		ID: "tok_" + newSecret(6), Name: req.Name, Kind: req.Kind, Role: req.Role, Screens: slices.Clone(req.Screens), Playlists: slices.Clone(req.Playlists),
		Hash: digest(secret), Created: m.opts.Now().UTC(), CreatedBy: by,
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens = append(m.tokens, t)
	m.byHash[t.Hash] = t
	if err := m.save(); err != nil {
		m.tokens = m.tokens[:len(m.tokens)-1]
		delete(m.byHash, t.Hash)
		return "", Token{}, err
	}
	out := *t
	out.Hash = ""
	return secret, out, nil
}

// Tokens lists the tokens (revoked ones too), without their hashes; kind
// "" means all kinds.
func (m *Manager) Tokens(kind string) []Token {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Token{}
	for _, t := range m.tokens {
		if kind == "" || t.Kind == kind {
			c := *t
			c.Hash = ""
			out = append(out, c)
		}
	}
	return out
}

// RevokeToken revokes a token at once: requests with it are refused and
// its open websockets are closed.
func (m *Manager) RevokeToken(id, by string) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokens {
		if t.ID != id {
			continue
		}
		if t.Revoked == nil {
			now := m.opts.Now().UTC()
			t.Revoked, t.RevokedBy = &now, by
			delete(m.byHash, t.Hash)
			if err := m.save(); err != nil {
				t.Revoked, t.RevokedBy = nil, ""
				m.byHash[t.Hash] = t
				return Token{}, err
			}
		}
		m.announceLocked("token:" + id)
		out := *t
		out.Hash = ""
		return out, nil
	}
	return Token{}, ErrNotFound
}

// Sweep forgets expired sessions and old sign-in failures.
func (m *Manager) Sweep() {
	now := m.opts.Now()
	m.mu.Lock()
	for k, s := range m.sessions {
		if now.Sub(s.seen) > m.opts.SessionIdle || now.Sub(s.created) > m.opts.SessionMax {
			delete(m.sessions, k)
		}
	}
	m.mu.Unlock()
	m.throttle.sweep(now)
}
