package panel

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

type recordingAlerts struct {
	mu     sync.Mutex
	events []string
	active map[string]Status
}

func (a *recordingAlerts) Alert(ev Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, fmt.Sprintf("%s:%s>%s", ev.Key, ev.From, ev.Status))
	if a.active == nil {
		a.active = map[string]Status{}
	}
	a.active[ev.Key] = ev.Status
	if ev.Status == StatusOK {
		delete(a.active, ev.Key)
	}
}

func (a *recordingAlerts) Mark(key string) *Mark {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.active[key]; ok {
		return &Mark{ID: "id-" + key, Status: st}
	}
	return nil
}

func (a *recordingAlerts) take() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := strings.Join(a.events, " ")
	a.events = nil
	return out
}

func alertEngine(t *testing.T, th *Thresholds) (*Engine, *fakeClock, *recordingAlerts) {
	t.Helper()
	clock := &fakeClock{t: start}
	alerts := &recordingAlerts{}
	e := New([]ScreenSpec{{ID: "s", Panels: []Spec{{ID: "temp", Feed: "air", Field: "pm25", Agg: AggLast, Window: time.Hour, StaleAfter: 5 * time.Minute, Thresholds: th}}}},
		&recordingSink{}, testLog(), prometheus.NewRegistry(), Options{Now: clock.Now, Alerts: alerts})
	return e, clock, alerts
}

func (c *fakeClock) read(e *Engine, x float64) {
	e.Observe("air", []feed.Point{point(c.Now(), "daoli", x)})
}

// TestAlertDurationAndHysteresis: crit only after 2 minutes past the line,
// and cleared only 5 below it.
func TestAlertDurationAndHysteresis(t *testing.T) {
	e, clock, alerts := alertEngine(t, &Thresholds{Warn: fl(75), Crit: fl(115), Hysteresis: 5, For: 2 * time.Minute})
	step := func(x float64, d time.Duration, want Status) {
		t.Helper()
		clock.read(e, x)
		viewOf(t, e, "temp") // the engine evaluates every second
		clock.Add(d)
		if v := viewOf(t, e, "temp"); v.Status != want {
			t.Fatalf("after %v: status %s, want %s", x, v.Status, want)
		}
	}
	step(120, time.Minute, StatusOK)      // past crit for 1 minute: not yet
	step(120, 61*time.Second, StatusCrit) // 2 minutes: raised
	if got := alerts.take(); got != "s/temp:ok>crit" {
		t.Fatalf("events %q", got)
	}
	if v := viewOf(t, e, "temp"); v.Alert == nil || v.Alert.ID != "id-s/temp" {
		t.Fatalf("no alert mark on the view: %+v", v.Alert)
	}
	step(112, time.Second, StatusCrit) // below crit, but within the hysteresis
	step(109, time.Second, StatusWarn) // 6 below: steps down to warn (109 >= 75)
	step(72, time.Second, StatusWarn)  // under warn by 3 only
	step(69, time.Second, StatusOK)    // cleared
	if got := alerts.take(); got != "s/temp:crit>warn s/temp:warn>ok" {
		t.Fatalf("events %q", got)
	}
	// A blip past the line that does not last raises nothing.
	step(130, time.Minute, StatusOK)
	step(50, time.Minute, StatusOK)
	step(130, time.Minute, StatusOK)
	if got := alerts.take(); got != "" {
		t.Fatalf("a blip raised %q", got)
	}
}

// TestAlertBelow: a share resolved is in trouble when it is low.
func TestAlertBelow(t *testing.T) {
	e, clock, alerts := alertEngine(t, &Thresholds{Warn: fl(85), Crit: fl(75), Below: true})
	clock.read(e, 80)
	if v := viewOf(t, e, "temp"); v.Status != StatusWarn {
		t.Fatalf("80 with warn below 85: %s", v.Status)
	}
	clock.read(e, 70)
	if v := viewOf(t, e, "temp"); v.Status != StatusCrit {
		t.Fatalf("70 with crit below 75: %s", v.Status)
	}
	clock.read(e, 90)
	viewOf(t, e, "temp")
	if got := alerts.take(); got != "s/temp:ok>warn s/temp:warn>crit s/temp:crit>ok" {
		t.Fatalf("events %q", got)
	}
}

// TestAlertStale: a panel silent past stale_after raises stale, which holds
// while the data is gone and clears when it is back.
func TestAlertStale(t *testing.T) {
	e, clock, alerts := alertEngine(t, nil)
	clock.read(e, 10)
	viewOf(t, e, "temp")
	clock.Add(6 * time.Minute)
	if v := viewOf(t, e, "temp"); v.Status != StatusStale {
		t.Fatalf("silent 6 minutes: %s", v.Status)
	}
	clock.Add(2 * time.Hour) // the reading has left the window too
	if v := viewOf(t, e, "temp"); v.Status != StatusNoData || v.Alert == nil {
		t.Fatalf("after the window: %s, alert %v", v.Status, v.Alert)
	}
	clock.read(e, 11)
	if v := viewOf(t, e, "temp"); v.Status != StatusOK {
		t.Fatalf("data back: %s", v.Status)
	}
	if got := alerts.take(); got != "s/temp:ok>stale s/temp:stale>ok" {
		t.Fatalf("events %q", got)
	}
}

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
