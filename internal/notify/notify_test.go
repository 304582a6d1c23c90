package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// fakeAM records what it is sent (a fake: the real Alertmanager is in
// the app's tests).
type fakeAM struct {
	mu    sync.Mutex
	posts [][]wire
	srv   *httptest.Server
}

func newFakeAM(t *testing.T) *fakeAM {
	f := &fakeAM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ws []wire
		json.NewDecoder(r.Body).Decode(&ws)
		f.mu.Lock()
		f.posts = append(f.posts, ws)
		f.mu.Unlock()
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// states are the states the fake was told of, in order, each once:
// "firing SEVERITY" or "resolved SEVERITY".
func (f *fakeAM) states(now time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.posts {
		for _, w := range p {
			s := "firing " + w.Labels["severity"]
			if !w.EndsAt.After(now) {
				s = "resolved " + w.Labels["severity"]
			}
			if len(out) == 0 || out[len(out)-1] != s {
				out = append(out, s)
			}
		}
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestKeptAcrossRestart: an alert that fired and cleared while the only
// Alertmanager was away, and cityscreen restarted meanwhile, reaches it
// firing, then (after the hold) resolved, from the file kept.
func TestKeptAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alertmanager.json")
	away := httptest.NewServer(http.NotFoundHandler())
	away.Close()
	n1, err := New(Options{URLs: []string{away.URL}, StatePath: path, Hold: 200 * time.Millisecond}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := alert.New(func([]feed.Point, func(error)) {}, quiet(), nil)
	m.SetNotify(n1.Changed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n1.Run(ctx); close(done) }()
	v := 200.0
	m.Alert(panel.Event{Key: "k", Screen: "s", Panel: "p", Title: "PM2.5", Status: panel.StatusCrit, Value: &v, Time: time.Now()})
	m.Alert(panel.Event{Key: "k", Screen: "s", Panel: "p", Status: panel.StatusOK, Time: time.Now()})
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done // stopped: what it kept is on disk

	am := newFakeAM(t)
	n2, err := New(Options{URLs: []string{am.srv.URL}, StatePath: path, Hold: 200 * time.Millisecond}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n2.Reconcile(nil) // nothing active after the restart
	runNotifier(t, n2)
	testkit.WaitFor(t, 5*time.Second, func() bool { return len(am.states(time.Now())) >= 2 })
	if got := am.states(time.Now()); len(got) != 2 || got[0] != "firing critical" || got[1] != "resolved critical" {
		t.Fatalf("the Alertmanager was told %q, want firing then resolved", got)
	}
	n2.mu.Lock()
	left := len(n2.alerts)
	n2.mu.Unlock()
	if left != 0 {
		t.Errorf("%d alerts still kept once resolved everywhere", left)
	}
}

// TestReconcile: an alert kept as firing from before a restart that the
// first evaluation does not raise again is resolved; one it raises again
// stays firing, never resolved.
func TestReconcile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alertmanager.json")
	n1, _ := New(Options{URLs: []string{"http://127.0.0.1:1"}, StatePath: path}, quiet(), nil)
	m := alert.New(func([]feed.Point, func(error)) {}, quiet(), nil)
	m.SetNotify(n1.Changed)
	m.Alert(panel.Event{Key: "a", Screen: "s", Panel: "a", Status: panel.StatusWarn, Time: time.Now()})
	m.Alert(panel.Event{Key: "b", Screen: "s", Panel: "b", Status: panel.StatusWarn, Time: time.Now()})
	n1.mu.Lock()
	n1.save()
	n1.mu.Unlock()

	n2, err := New(Options{URLs: []string{"http://127.0.0.1:1"}, StatePath: path}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := alert.New(func([]feed.Point, func(error)) {}, quiet(), nil)
	m2.Alert(panel.Event{Key: "a", Screen: "s", Panel: "a", Status: panel.StatusWarn, Time: time.Now()}) // raised again
	n2.Reconcile(m2.Active())
	n2.mu.Lock()
	defer n2.mu.Unlock()
	for _, x := range n2.alerts {
		if resolved := !x.EndsAt.IsZero(); resolved != (x.Labels["panel"] == "b") {
			t.Errorf("panel %s: resolved %v", x.Labels["panel"], resolved)
		}
	}
	if len(n2.alerts) != 2 {
		t.Errorf("%d alerts kept, want 2", len(n2.alerts))
	}
}

// TestRetrySoon: after an Alertmanager that took alerts fails one
// request, the next try comes about a second later, not a resend later.
func TestRetrySoon(t *testing.T) {
	var mu sync.Mutex
	fail, posts := false, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false // this once
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		posts++
	}))
	defer srv.Close()
	n, err := New(Options{URLs: []string{srv.URL}, StatePath: filepath.Join(t.TempDir(), "am.json"), Resend: time.Minute}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := alert.New(func([]feed.Point, func(error)) {}, quiet(), nil)
	m.SetNotify(n.Changed)
	runNotifier(t, n)
	m.Alert(panel.Event{Key: "a", Screen: "s", Panel: "a", Status: panel.StatusWarn, Time: time.Now()})
	count := func() int { mu.Lock(); defer mu.Unlock(); return posts }
	testkit.WaitFor(t, 5*time.Second, func() bool { return count() >= 1 }) // sent
	mu.Lock()
	fail = true
	mu.Unlock()
	m.Alert(panel.Event{Key: "a", Screen: "s", Panel: "a", Status: panel.StatusCrit, Time: time.Now()}) // a change: sent at once, refused
	testkit.WaitFor(t, 5*time.Second, func() bool { return count() >= 2 })                              // tried again after the refusal
}

// TestShelvingRunsOut: a shelving that ends by its own time leaves the
// silence to expire in Alertmanager by itself: nothing is deleted, and
// the store forgets it.
func TestShelvingRunsOut(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/api/v2/silences" {
			w.Write([]byte(`{"silenceID":"s1"}`))
		}
	}))
	defer srv.Close()
	var clock sync.Mutex
	now := time.Now()
	at := func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	n, err := New(Options{URLs: []string{srv.URL}, StatePath: filepath.Join(t.TempDir(), "am.json"), Now: at}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := alert.New(func([]feed.Point, func(error)) {}, quiet(), nil)
	m.SetNotify(n.Changed)
	runNotifier(t, n)
	m.Alert(panel.Event{Key: "a", Screen: "s", Panel: "a", Status: panel.StatusWarn, Time: at()})
	id := m.Active()[0].ID
	if _, err := m.Shelve(id, at().Add(time.Minute), "李伟", ""); err != nil {
		t.Fatal(err)
	}
	held := func() int { n.mu.Lock(); defer n.mu.Unlock(); return len(n.silences) }
	testkit.WaitFor(t, 5*time.Second, func() bool { // the silence is made
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.silences["a"] != nil && n.silences["a"].IDs[srv.URL] == "s1"
	})
	clock.Lock()
	now = now.Add(2 * time.Minute) // the shelving is over
	clock.Unlock()
	if _, err := m.Unshelve(id); err != nil { // as the manager's clock would
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return held() == 0 }) // the silence is let go
	mu.Lock()
	defer mu.Unlock()
	for _, c := range calls {
		if strings.HasPrefix(c, "DELETE") {
			t.Errorf("an expired silence was deleted: %v", calls)
		}
	}
}

// runNotifier runs n until the test ends, and waits for it to stop before
// the test's temporary files are removed (it writes its state file).
func runNotifier(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
