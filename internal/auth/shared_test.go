package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// memCluster is a cluster in memory for the unit tests of this package:
// every Put reaches every member's watchers at once, in order. The real
// one, through the broker, is internal/cluster, tested with the managers
// of three instances in internal/app (TestClusterControl).
type memCluster struct {
	mu       sync.Mutex
	records  map[string]map[string][]byte
	watchers map[string][]func(string, []byte)
	down     bool
	forget   map[string]time.Duration // ForgetDeleted's, by kind
}

type member struct{ c *memCluster }

func (m member) Put(kind, key string, value any) error {
	m.c.mu.Lock()
	if m.c.down {
		m.c.mu.Unlock()
		return errUnavailable
	}
	var raw []byte
	if value != nil {
		raw, _ = json.Marshal(value)
	}
	if m.c.records[kind] == nil {
		m.c.records[kind] = map[string][]byte{}
	}
	m.c.records[kind][key] = raw
	fns := append([]func(string, []byte){}, m.c.watchers[kind]...)
	m.c.mu.Unlock()
	for _, fn := range fns {
		fn(key, raw)
	}
	return nil
}

func (m member) Watch(kind string, fn func(string, []byte)) {
	m.c.mu.Lock()
	m.c.watchers[kind] = append(m.c.watchers[kind], fn)
	held := map[string][]byte{}
	for k, v := range m.c.records[kind] {
		held[k] = v
	}
	m.c.mu.Unlock()
	for k, v := range held {
		fn(k, v)
	}
}

func (m member) Healthy() bool {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return !m.c.down
}

func (m member) ForgetDeleted(kind string, after time.Duration) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.c.forget == nil {
		m.c.forget = map[string]time.Duration{}
	}
	m.c.forget[kind] = after
}

func (m member) Known(kind string) map[string]bool {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	out := map[string]bool{}
	for k := range m.c.records[kind] {
		out[k] = true
	}
	return out
}

var errUnavailable = errors.New("unavailable")

func TestSharedAcrossInstances(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)}
	mc := &memCluster{records: map[string]map[string][]byte{}, watchers: map[string][]func(string, []byte){}}
	a, b := open(t, t.TempDir(), c), open(t, t.TempDir(), c)
	for _, u := range []struct {
		name string
		role Role
	}{{"admin", Admin}, {"li.wei", Operator}} {
		if err := a.CreateUser(u.name, u.role, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	// a joins first and brings its user; b joins after.
	if err := a.Share(member{mc}, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Share(member{mc}, true); err != nil {
		t.Fatal(err)
	}
	if len(b.Users()) != 2 {
		t.Fatalf("b has users %v, want a's", b.Users())
	}
	// Only sessions' tombstones are forgotten, once a session would be
	// void anyway; revoked tokens and deleted users stay deleted.
	if want := map[string]time.Duration{sharedSession: a.opts.SessionMax + time.Hour}; len(mc.forget) != 1 || mc.forget[sharedSession] != want[sharedSession] {
		t.Fatalf("the cluster forgets deletions %v, want %v", mc.forget, want)
	}
	secret, tok, err := a.CreateToken(TokenRequest{Name: "wall-1", Kind: KindDisplay, Screens: []string{"city"}}, "admin", func(string, string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	p, err := b.Authenticate(req, "10.0.0.1")
	if err != nil || p == nil || p.ID != tok.ID {
		t.Fatalf("b: %v %v, want a's token admitted", p, err)
	}
	gone, stop := a.Watch(p)
	defer stop()
	if _, err := b.RevokeToken(tok.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	default:
		t.Fatal("a's websocket of the token revoked on b is not told")
	}
	if _, err := a.Authenticate(req, "10.0.0.1"); !errors.Is(err, ErrUnknownCredentials) {
		t.Fatalf("a after revocation on b: %v", err)
	}
	// A session made on a is good on b; signing out on b ends it on a.
	in, _, err := a.Login(t.Context(), SignIn{User: "li.wei", Password: "correct horse battery", Addr: "10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	sreq := httptest.NewRequest("GET", "/api/me", nil)
	sreq.AddCookie(&http.Cookie{Name: SessionCookie, Value: in.Cookie})
	sp, err := b.Authenticate(sreq, "10.0.0.2")
	if err != nil || sp == nil || sp.Name != "li.wei" {
		t.Fatalf("b: the session from a: %v %v", sp, err)
	}
	if err := b.Logout(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(sreq, "10.0.0.2"); !errors.Is(err, ErrUnknownCredentials) {
		t.Fatalf("a after signing out on b: %v", err)
	}
	// A password changed on b ends sessions begun before it everywhere,
	// a restart from the cluster's records included.
	in, _, err = a.Login(t.Context(), SignIn{User: "li.wei", Password: "correct horse battery", Addr: "10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	newPW := "another horse battery"
	if err := b.UpdateUser("li.wei", UserChange{Password: &newPW}); err != nil {
		t.Fatal(err)
	}
	sreq = httptest.NewRequest("GET", "/api/me", nil)
	sreq.AddCookie(&http.Cookie{Name: SessionCookie, Value: in.Cookie})
	a2 := open(t, t.TempDir(), c)
	if err := a2.Share(member{mc}, true); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Manager{"a": a, "restarted": a2} {
		if p, err := m.Authenticate(sreq, "10.0.0.2"); err == nil {
			t.Fatalf("%s: a session begun before the password change is let in: %v", name, p)
		}
	}
	// Not hearing the cluster: nothing is let in on a token or session,
	// and nothing changes.
	mc.mu.Lock()
	mc.down = true
	mc.mu.Unlock()
	if _, err := a.Authenticate(sreq, "10.0.0.2"); !errors.Is(err, ErrUnverifiable) {
		t.Fatalf("a without the cluster: %v, want ErrUnverifiable", err)
	}
	if err := a.CreateUser("zhang", Viewer, "correct horse battery"); err == nil {
		t.Fatal("a user was made without the cluster")
	}
	if len(a.Users()) != 2 {
		t.Fatalf("a holds %d users after a refused change", len(a.Users()))
	}
}

// TestJoiningRewritesNothingUnchanged: the cluster's records, replayed as
// an instance joins, are what its auth.json already holds, so the file is
// not written again for each; a change from another instance still is.
func TestJoiningRewritesNothingUnchanged(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)}
	mc := &memCluster{records: map[string]map[string][]byte{}, watchers: map[string][]func(string, []byte){}}
	dir := t.TempDir()
	a := open(t, dir, c)
	if err := a.CreateUser("admin", Admin, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, name := range []string{"wall-1", "wall-2", "wall-3"} {
		_, tok, err := a.CreateToken(TokenRequest{Name: name, Kind: KindDisplay, Screens: []string{"city"}}, "admin", func(string, string) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	// The file, the same records written without indentation: a write of
	// the manager's would indent it again.
	path := filepath.Join(dir, "auth.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, compact.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Share(member{mc}, true); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, compact.Bytes()) {
		t.Fatalf("auth.json was written again for records it already held (%v):\n%s", err, data)
	}
	b := open(t, t.TempDir(), c)
	if err := b.Share(member{mc}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RevokeToken(ids[1], "admin"); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"revoked"`)) {
		t.Fatalf("auth.json after a revocation on another instance does not hold it:\n%s", data)
	}
}
