package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DeviceCookie names the cookie that marks a browser a user has signed in
// from: sign-ins from it are counted apart from everyone else's, so that
// failures by others do not lock its user out (OWASP's device cookies).
const DeviceCookie = "cityscreen_device"

// DeviceLife is how long a device cookie is honoured, and how long an
// address a user signed in from stays known.
const DeviceLife = 180 * 24 * time.Hour

// ErrBusy says too many passwords are being checked at once.
var ErrBusy = errors.New("too many sign-ins at once: try again in a moment")

// SignIn is one attempt to sign in.
type SignIn struct {
	User, Password string
	Addr           string // the client's address (the real one behind trusted proxies)
	Device         string // the device cookie the browser sent, if any
}

// SignedIn is a successful sign-in.
type SignedIn struct {
	Cookie    string // the session cookie's value
	Device    string // the device cookie to set (renewed at each sign-in)
	Principal *Principal
}

// Login checks a user's password. It answers the session, or
// ErrBadCredentials with how long to hold the answer, or a *LockedError,
// or ErrBusy.
//
// Each attempt is counted before its password is checked, under keys that
// depend on where it comes from. From a browser that holds a device
// cookie of this user, or from an address this user signed in from within
// DeviceLife, failures count against that device or address alone. From
// anywhere else, they count against the user's sign-ins from unknown
// clients and against the address. So an attacker who tries a user's
// password locks out only unknown clients, never the user at their own
// browser or desk. At most MaxHashing passwords are checked at once.
func (m *Manager) Login(ctx context.Context, in SignIn) (SignedIn, time.Duration, error) {
	now := m.opts.Now()
	keys := m.signInKeys(in, now)
	if wait := m.throttle.begin(now, keys...); wait > 0 {
		return SignedIn{}, 0, &LockedError{For: wait}
	}
	m.mu.Lock()
	u := m.users[in.User]
	var hash string
	if u != nil && !u.Disabled {
		hash = u.Hash
	}
	m.mu.Unlock()
	select {
	case m.hashing <- struct{}{}:
	case <-ctx.Done():
		m.throttle.cancel(keys...)
		return SignedIn{}, 0, ErrBusy
	case <-time.After(m.opts.HashWait):
		m.throttle.cancel(keys...)
		return SignedIn{}, 0, ErrBusy
	}
	ok := false
	if hash != "" {
		ok, _ = CheckPassword(hash, in.Password)
	} else {
		// As slow as a real check, so that timing does not tell which
		// names exist.
		CheckPassword(dummyHash, in.Password)
	}
	<-m.hashing
	if !ok {
		return SignedIn{}, m.throttle.fail(now, keys...), ErrBadCredentials
	}
	m.throttle.succeed(keys...)
	cookie := newSecret(32)
	s := &session{user: in.User, csrf: newSecret(24), created: now, seen: now}
	if err := m.commit(change{sharedSession, digest(cookie), &sessionRecord{User: s.user, CSRF: s.csrf, Created: now, Seen: now}}); err != nil {
		return SignedIn{}, 0, err
	}
	m.mu.Lock()
	role := u.Role
	if m.known[in.User] == nil {
		m.known[in.User] = map[string]time.Time{}
	}
	m.known[in.User][in.Addr] = now
	m.mu.Unlock()
	return SignedIn{
		Cookie:    cookie,
		Device:    m.deviceCookie(in.User, now),
		Principal: &Principal{Kind: "user", Name: in.User, ID: digest(cookie)[:12], Role: role, CSRF: s.csrf},
	}, 0, nil
}

// signInKeys are the throttle's keys for an attempt: its trusted device or
// known address, else the user's unknown clients and the address.
func (m *Manager) signInKeys(in SignIn, now time.Time) []string {
	if id, ok := m.checkDevice(in.Device, in.User, now); ok {
		return []string{"device:" + id}
	}
	m.mu.Lock()
	seen, known := m.known[in.User][in.Addr]
	m.mu.Unlock()
	if known && now.Sub(seen) < DeviceLife {
		return []string{"known:" + in.User + "@" + in.Addr}
	}
	return []string{"user:" + in.User, "addr:" + in.Addr}
}

// deviceCookie is a new device cookie for user: a random ID, the user, the
// time, and their HMAC under the server's device key.
func (m *Manager) deviceCookie(user string, now time.Time) string {
	payload := newSecret(12) + "." + base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + strconv.FormatInt(now.Unix(), 10)
	return payload + "." + m.deviceMAC(payload)
}

func (m *Manager) deviceMAC(payload string) string {
	mac := hmac.New(sha256.New, m.deviceKey)
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkDevice reports whether value is a device cookie this server gave
// user within DeviceLife, and its ID.
func (m *Manager) checkDevice(value, user string, now time.Time) (string, bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 {
		return "", false
	}
	payload := strings.Join(parts[:3], ".")
	if !hmac.Equal([]byte(parts[3]), []byte(m.deviceMAC(payload))) {
		return "", false
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[1])
	issued, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || err2 != nil || string(name) != user || now.Sub(time.Unix(issued, 0)) > DeviceLife {
		return "", false
	}
	return parts[0], true
}

// LockedError says that sign-in is locked out for a while.
type LockedError struct{ For time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %s", e.For.Round(time.Second))
}

var dummyHash, _ = HashPassword("cityscreen-no-such-user")
