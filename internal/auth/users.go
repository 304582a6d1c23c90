package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"
)

// User is a person who signs in.
type User struct {
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Hash     string    `json:"hash,omitempty"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled,omitempty"`
	// Changed is when its role, password or state last changed: sessions
	// begun before are over, on every instance and after a restart.
	Changed time.Time `json:"changed,omitzero"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func (m *Manager) userNames() []string {
	names := make([]string, 0, len(m.users))
	for n := range m.users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
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
	var u User
	if cur := m.users[name]; cur != nil {
		u = *cur
	}
	m.mu.Unlock()
	if u.Name != "" && u.Role == Admin && !u.Disabled {
		if ok, _ := CheckPassword(u.Hash, password); ok {
			return nil
		}
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if u.Name == "" {
		u = User{Name: name, Created: m.opts.Now().UTC()}
	} else {
		u.Changed = m.opts.Now().UTC()
	}
	u.Role, u.Hash, u.Disabled = Admin, hash, false
	return m.commit(change{sharedUser, name, &u})
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
	if m.setupCode != want || !m.needsSetupLocked() { // used meanwhile
		m.mu.Unlock()
		return ErrBadSetupCode
	}
	m.setupCode = ""
	m.mu.Unlock()
	if err := m.commit(change{sharedUser, name, &User{Name: name, Role: Admin, Hash: hash, Created: m.opts.Now().UTC()}}); err != nil {
		m.mu.Lock()
		m.setupCode = want
		m.mu.Unlock()
		return err
	}
	if m.opts.SetupCodeFile != "" {
		os.Remove(m.opts.SetupCodeFile)
	}
	return nil
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
	exists := m.users[name] != nil
	m.mu.Unlock()
	if exists {
		return ErrExists
	}
	return m.commit(change{sharedUser, name, &User{Name: name, Role: role, Hash: hash, Created: m.opts.Now().UTC()}})
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
	cur := m.users[name]
	if cur == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	u := *cur
	if c.Role != nil {
		u.Role = *c.Role
	}
	if c.Disabled != nil {
		u.Disabled = *c.Disabled
	}
	last := m.noAdminLeft(name, &u)
	m.mu.Unlock()
	if last {
		return ErrLastAdmin
	}
	if hash != "" {
		u.Hash = hash
	}
	u.Changed = m.opts.Now().UTC()
	if err := m.commit(change{sharedUser, name, &u}); err != nil {
		return err
	}
	m.mu.Lock()
	m.endSessionsLocked(name) // whatever changed: a role, a password, a disabling
	m.mu.Unlock()
	return nil
}

// DeleteUser removes a user and ends its sessions.
func (m *Manager) DeleteUser(name string) error {
	m.mu.Lock()
	exists, last := m.users[name] != nil, m.noAdminLeft(name, nil)
	m.mu.Unlock()
	switch {
	case !exists:
		return ErrNotFound
	case last:
		return ErrLastAdmin
	}
	return m.commit(change{sharedUser, name, nil})
}
