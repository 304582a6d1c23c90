package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func brokerURL(t *testing.T) string {
	url := os.Getenv("CITYSCREEN_TEST_MQTT_URL")
	if url == "" {
		t.Fatal("CITYSCREEN_TEST_MQTT_URL is not set: this test needs a broker (make test starts one)")
	}
	return url
}

// site is a cluster of its own on the test broker: a prefix no other test
// uses, and a secret.
type site struct {
	url, prefix string
	secret      []byte
}

func newSite(t *testing.T) site {
	b := make([]byte, 6)
	rand.Read(b)
	secret := make([]byte, 32)
	rand.Read(secret)
	return site{url: brokerURL(t), prefix: "cityscreen/cluster/test-" + hex.EncodeToString(b), secret: secret}
}

// open starts an instance of the site's cluster with its mirror in dir.
func (s site) open(t *testing.T, name, dir string) *Store {
	t.Helper()
	return s.openWith(t, name, dir, nil)
}

// openWith is open with a clock for forgetting deleted records.
func (s site) openWith(t *testing.T, name, dir string, now func() time.Time) *Store {
	t.Helper()
	st, err := Open(Options{URL: s.url, ClientID: "cluster-test-" + name + "-" + filepath.Base(s.prefix),
		Prefix: s.prefix, Secret: s.secret, Instance: name, Path: filepath.Join(dir, "cluster.json"),
		Beat: 100 * time.Millisecond, Grace: 500 * time.Millisecond, Timeout: 3 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	testkit.WaitFor(t, 5*time.Second, st.Healthy) // the cluster heard
	return st
}

// plain is a broker client without the cluster's secret.
func plain(t *testing.T, url string) mqtt.Client {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("cluster-test-intruder-" + t.Name()))
	if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

func value(st *Store, kind, key string) string { return string(st.Get(kind, key)) }

func TestRecordsReachEveryInstance(t *testing.T) {
	s := newSite(t)
	a, b := s.open(t, "a", t.TempDir()), s.open(t, "b", t.TempDir())
	var mu sync.Mutex
	var seen []string
	b.Watch("token", func(key string, v []byte) {
		mu.Lock()
		seen = append(seen, key+"="+string(v))
		mu.Unlock()
	})
	if err := a.Put("token", "tok_1", map[string]string{"name": "wall-1"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return value(b, "token", "tok_1") == `{"name":"wall-1"}` }) // b to hold a's token
	if err := b.Put("token", "tok_1", map[string]string{"name": "wall-1", "revoked": "yes"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return value(a, "token", "tok_1") == `{"name":"wall-1","revoked":"yes"}` }) // a to hold b's revocation
	if err := a.Delete("token", "tok_1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Get("token", "tok_1") == nil }) // b to see the deletion
	mu.Lock()
	defer mu.Unlock()
	want := []string{`tok_1={"name":"wall-1"}`, `tok_1={"name":"wall-1","revoked":"yes"}`, `tok_1=`}
	if len(seen) != len(want) {
		t.Fatalf("b's watcher saw %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("b's watcher saw %q, want %q", seen, want)
		}
	}
}

// A broker client without the secret can neither make a record nor put an
// old one back: both are refused, and the genuine record is published
// again, so that an instance starting afterwards gets it.
func TestForgedAndReplayedRecordsRefused(t *testing.T) {
	s := newSite(t)
	a := s.open(t, "a", t.TempDir())
	topic := s.prefix + "/state/token/tok_1"
	if err := a.Put("token", "tok_1", map[string]bool{"revoked": false}); err != nil {
		t.Fatal(err)
	}
	// The intruder keeps the sealed record as it was before revocation.
	var old []byte
	spy := plain(t, s.url)
	got := make(chan []byte, 10)
	spy.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() })
	select {
	case old = <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("the record is not retained at the broker")
	}
	if err := a.Put("token", "tok_1", map[string]bool{"revoked": true}); err != nil {
		t.Fatal(err)
	}
	// A forged record, JSON as a record's plain text would be.
	forged, _ := json.Marshal(envelope{V: Version{T: time.Now().Add(time.Hour).UnixNano(), I: "z"}, Value: json.RawMessage(`{"revoked":false}`)})
	publish(t, spy, topic, forged)
	publish(t, spy, s.prefix+"/state/user/mallory", forged)
	// The old genuine record, replayed.
	publish(t, spy, topic, old)
	// Cleared.
	publish(t, spy, topic, nil)
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Rejected() >= 2 }) // the forgeries to be refused
	time.Sleep(300 * time.Millisecond)
	if v := value(a, "token", "tok_1"); v != `{"revoked":true}` {
		t.Fatalf("a holds %s, want the revocation", v)
	}
	if a.Get("user", "mallory") != nil {
		t.Fatal("a forged user was taken")
	}
	// A new instance gets the genuine, newest record from the broker.
	b := s.open(t, "b", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, func() bool { return value(b, "token", "tok_1") == `{"revoked":true}` }) // b to hold the revocation
}

// An instance starts with what its mirror holds when the broker is away,
// and an instance that was stopped catches up when it connects.
func TestMirrorAndCatchUp(t *testing.T) {
	s := newSite(t)
	dirA := t.TempDir()
	a := s.open(t, "a", dirA)
	if err := a.Put("feed", "air", map[string]string{"topic": "city/air/#"}); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	b := s.open(t, "b", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Get("feed", "air") != nil }) // b to hold the feed
	if err := b.Put("feed", "heat", map[string]string{"topic": "city/heat/#"}); err != nil {
		t.Fatal(err)
	}
	// Without a broker: the mirror alone.
	off := site{url: "tcp://127.0.0.1:1", prefix: s.prefix, secret: s.secret}
	st, err := Open(Options{URL: off.url, ClientID: "x", Prefix: off.prefix, Secret: off.secret, Instance: "a", Path: filepath.Join(dirA, "cluster.json")})
	if err != nil {
		t.Fatal(err)
	}
	if st.Get("feed", "air") == nil || st.Healthy() {
		t.Fatalf("from its mirror alone: air %s, healthy %v", st.Get("feed", "air"), st.Healthy())
	}
	// Back with the broker: a catches up.
	a2 := s.open(t, "a", dirA)
	testkit.WaitFor(t, 5*time.Second, func() bool { return a2.Get("feed", "heat") != nil }) // a to catch up
	// The wrong secret opens nothing.
	if _, err := Open(Options{Secret: make([]byte, 31), Path: filepath.Join(dirA, "cluster.json")}); err == nil {
		t.Fatal("a short secret was taken")
	}
	wrong, err := Open(Options{Secret: make([]byte, 32), Path: filepath.Join(dirA, "cluster.json"), Prefix: s.prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(wrong.Keys("feed")) != 0 {
		t.Fatal("records opened with another secret")
	}
}

// A record the broker lost (a restart without persistence, a cleared
// retained message) is put back by the instances that hold it.
func TestBrokerLossRepaired(t *testing.T) {
	s := newSite(t)
	a := s.open(t, "a", t.TempDir())
	if err := a.Put("user", "li", map[string]string{"role": "operator"}); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	publish(t, plain(t, s.url), s.prefix+"/state/user/li", nil) // the broker forgets it
	a2 := s.open(t, "a", filepath.Dir(a.opts.Path))
	_ = a2
	b := s.open(t, "b", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, func() bool { return b.Get("user", "li") != nil }) // b to get the record a put back
}

func TestHealthFollowsTheBroker(t *testing.T) {
	st, err := Open(Options{URL: "tcp://127.0.0.1:1", ClientID: "x", Prefix: "p", Secret: make([]byte, 32), Instance: "a",
		Path: filepath.Join(t.TempDir(), "c.json"), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(context.Background()); err == nil {
		t.Fatal("started against no broker")
	}
	defer st.Stop()
	if st.Healthy() {
		t.Fatal("healthy without a broker")
	}
	if err := st.Put("token", "t", 1); err != ErrUnavailable {
		t.Fatalf("put without a broker: %v, want ErrUnavailable", err)
	}
	if st.Get("token", "t") != nil {
		t.Fatal("a change the broker did not take was applied")
	}
}

// BenchmarkPropagation measures a change from Put on one instance until
// another instance's watcher has it: the delay before a revocation is
// known everywhere.
func BenchmarkPropagation(b *testing.B) {
	url := os.Getenv("CITYSCREEN_TEST_MQTT_URL")
	if url == "" {
		b.Fatal("CITYSCREEN_TEST_MQTT_URL is not set: this benchmark needs a broker")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	prefix := fmt.Sprintf("cityscreen/cluster/bench-%d", time.Now().UnixNano())
	open := func(name string) *Store {
		st, err := Open(Options{URL: url, ClientID: "cluster-bench-" + name + prefix[len(prefix)-6:], Prefix: prefix, Secret: secret,
			Instance: name, Path: filepath.Join(b.TempDir(), "c.json")})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(st.Stop)
		return st
	}
	a, other := open("a"), open("b")
	got := make(chan string, 1)
	other.Watch("token", func(key string, _ []byte) {
		select {
		case got <- key:
		default:
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("tok_%d", i)
		if err := a.Put("token", key, map[string]bool{"revoked": true}); err != nil {
			b.Fatal(err)
		}
		for k := range got {
			if k == key {
				break
			}
		}
	}
}

// TestDeletedForgotten: a deleted session is forgotten on every instance
// and at the broker once its time has passed, by each instance's own
// clock; a deleted token, whose kind is not forgotten, is kept. An
// instance whose clock says the time has not passed yet puts a cleared
// tombstone back, and forgets it at its own time.
func TestDeletedForgotten(t *testing.T) {
	s := newSite(t)
	var mu sync.Mutex
	ahead := map[string]time.Duration{}
	clock := func(name string) func() time.Time {
		return func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(ahead[name]) }
	}
	move := func(name string, d time.Duration) { mu.Lock(); ahead[name] = d; mu.Unlock() }
	a, b := s.openWith(t, "a", t.TempDir(), clock("a")), s.openWith(t, "b", t.TempDir(), clock("b"))
	for _, st := range []*Store{a, b} {
		st.ForgetDeleted("session", time.Hour)
	}
	for _, kind := range []string{"session", "token"} {
		if err := a.Put(kind, "k1", map[string]string{"user": "li"}); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(kind, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	held := func(st *Store, kind string) bool { return st.Known(kind)["k1"] }
	testkit.WaitFor(t, 5*time.Second, func() bool { return held(b, "session") && held(b, "token") }) // b holds both tombstones
	move("a", 30*time.Minute)
	if n := a.Forget(clock("a")()); n != 0 {
		t.Fatalf("forgot %d records before their time", n)
	}
	move("a", 2*time.Hour)
	if n := a.Forget(clock("a")()); n != 1 || held(a, "session") || !held(a, "token") {
		t.Fatalf("forgot %d; session held %v, token held %v: want the session's tombstone alone forgotten", n, held(a, "session"), held(a, "token"))
	}
	// By b's clock the time has not passed: it puts the tombstone back,
	// and a takes it again.
	testkit.WaitFor(t, 5*time.Second, func() bool { return held(a, "session") })
	move("b", 2*time.Hour)
	if n := b.Forget(clock("b")()); n != 1 {
		t.Fatalf("b forgot %d records, want 1", n)
	}
	if mirrored, err := Open(Options{Prefix: s.prefix, Secret: s.secret, Instance: "b", Path: b.opts.Path}); err != nil || held(mirrored, "session") {
		t.Fatalf("b's mirror still holds the forgotten tombstone (%v)", err)
	}
	// a hears b clear it, past its time by a's clock: a forgets it too.
	testkit.WaitFor(t, 5*time.Second, func() bool { return !held(a, "session") && !held(b, "session") })
	c := s.open(t, "c", t.TempDir()) // hears what the broker holds
	if held(c, "session") || !held(c, "token") {
		t.Fatalf("a new instance holds the session %v, the token %v: want the token's tombstone alone", held(c, "session"), held(c, "token"))
	}
	a.Stop()
	again, err := Open(Options{Prefix: s.prefix, Secret: s.secret, Instance: "a", Path: a.opts.Path})
	if err != nil {
		t.Fatal(err)
	}
	if held(again, "session") || !held(again, "token") {
		t.Fatal("the mirror still holds the forgotten tombstone, or lost the kept one")
	}
}
