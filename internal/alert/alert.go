// Package alert keeps the command centre's alerts: the panels (and groups)
// whose values crossed their thresholds or whose feeds went silent. It
// takes the panel engine's events, keeps the active alerts and the recently
// cleared ones, records who acknowledged what, and writes every raise,
// change, clear and acknowledgement to InfluxDB (measurement
// cityscreen_alert) through the write-ahead log.
package alert

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Measurement is where alert events are stored.
const Measurement = "cityscreen_alert"

// keepCleared is how many cleared alerts are listed.
const keepCleared = 500

// Alert is one alert, active or cleared.
type Alert struct {
	ID      string            `json:"id"`
	Screen  string            `json:"screen"`
	Panel   string            `json:"panel"`
	Title   string            `json:"title"`
	Tags    map[string]string `json:"tags"`
	Status  panel.Status      `json:"status"` // warn, crit or stale; for a cleared alert, its last
	Value   *float64          `json:"value"`
	Since   time.Time         `json:"since"`
	Cleared *time.Time        `json:"cleared"`
	// Actions are what people did to it: acknowledged, assigned,
	// shelved. In a cluster every instance shows them alike (shared.go).
	Actions
	// Escalated is when the alert, not acknowledged in time, was
	// escalated to the duty leader (nil: not escalated).
	Escalated *time.Time `json:"escalated,omitempty"`
	// Threshold is the threshold its value crossed (nil for a stale
	// alert), Below whether low values are the trouble.
	Threshold *float64 `json:"threshold,omitempty"`
	Below     bool     `json:"below,omitempty"`
	// ResolvedBy is who resolved a stale alert by hand, and why.
	ResolvedBy      string `json:"resolved_by,omitempty"`
	ResolvedComment string `json:"resolved_comment,omitempty"`
	// Cases are the IDs of the cases an overdue alert is about, most
	// overdue first (at most panel.MaxAlertCases), kept current while it
	// is active.
	Cases []string `json:"cases,omitempty"`
	key   string
}

// Actions are what people did to an active alert.
type Actions struct {
	AckedBy string `json:"acked_by"`
	// AckedName is who acknowledged it, as people know them (AckedBy is
	// the audit log's actor).
	AckedName string     `json:"acked_name,omitempty"`
	AckedAt   *time.Time `json:"acked_at,omitempty"`
	// AckComment is what the operator wrote when acknowledging.
	AckComment string `json:"ack_comment,omitempty"`
	// Assignee is who must act (a person or a department), AssignedBy who
	// said so, AssignedAt when.
	Assignee   string     `json:"assignee,omitempty"`
	AssignedBy string     `json:"assigned_by,omitempty"`
	AssignedAt *time.Time `json:"assigned_at,omitempty"`
	// ShelvedUntil is when a shelving ends (nil: not shelved); ShelvedBy
	// who shelved it and ShelveComment why. A shelved alert is silenced
	// in Alertmanager and does not escalate.
	ShelvedUntil  *time.Time `json:"shelved_until,omitempty"`
	ShelvedBy     string     `json:"shelved_by,omitempty"`
	ShelveComment string     `json:"shelve_comment,omitempty"`
}

// Key is the alert's panel and group, the same for each of its raises.
func (a Alert) Key() string { return a.key }

// Store makes points durable on their way to InfluxDB.
type Store func(points []feed.Point, done func(error))

// Notify is told of every raise, change, clear, acknowledgement,
// assignment, escalation and shelving (kind "raise", "change", "clear",
// "ack", "assign", "escalate", "shelve", "unshelve"), with a copy of the
// alert. It must not block.
type Notify func(a Alert, kind string)

// Manager holds the alerts. It is safe for concurrent use.
type Manager struct {
	log   *slog.Logger
	store Store
	now   func() time.Time

	mu      sync.Mutex
	active  map[string]*Alert // by key
	cleared []*Alert          // oldest first
	touch   func(screen, panel string)
	notify  Notify

	// escalateAfter is how long an alert may stay unacknowledged before it
	// escalates; 0 means never.
	escalateAfter time.Duration

	// shared keeps people's actions in a cluster (nil: this instance
	// alone); pending are actions on alerts not raised here yet, by
	// SharedKey.
	shared  Shared
	pending map[string]Operator

	writes chan []feed.Point
	done   chan struct{}
	gauge  *prometheus.GaugeVec
	events *prometheus.CounterVec
}

// New returns a manager that stores events with store; Run writes them.
func New(store Store, log *slog.Logger, reg prometheus.Registerer) *Manager {
	m := &Manager{
		log: log.With("component", "alert"), store: store, now: time.Now,
		active: map[string]*Alert{}, writes: make(chan []feed.Point, 4096), done: make(chan struct{}),
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cityscreen_alerts_active", Help: "Active alerts by status.",
		}, []string{"status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_alert_events_total", Help: "Alert events by kind: raise, change, clear, ack, assign, escalate, shelve, unshelve, resolve.",
		}, []string{"event"}),
	}
	for _, s := range []panel.Status{panel.StatusWarn, panel.StatusCrit, panel.StatusStale} {
		m.gauge.WithLabelValues(string(s))
	}
	if reg != nil {
		reg.MustRegister(m.gauge, m.events)
	}
	return m
}

// SetEscalation sets how long an active alert may stay unacknowledged
// before it escalates (0: never).
func (m *Manager) SetEscalation(after time.Duration) {
	m.mu.Lock()
	m.escalateAfter = after
	m.mu.Unlock()
}

// escalate ends the shelvings that are over, and escalates the active
// alerts not acknowledged (nor shelved) within the time allowed: each is
// marked, recorded and told to the notifier once.
func (m *Manager) escalate() {
	m.mu.Lock()
	now := m.now().UTC()
	var touched []*Alert
	for _, a := range m.active {
		if a.ShelvedUntil != nil && !now.Before(*a.ShelvedUntil) {
			// The shelving is over.
			a.ShelvedUntil, a.ShelvedBy, a.ShelveComment = nil, "", ""
			m.events.WithLabelValues("unshelve").Inc()
			m.queue(a, "unshelve", now)
			if m.notify != nil {
				m.notify(*a, "unshelve")
			}
			touched = append(touched, a)
		}
		if m.escalateAfter <= 0 || a.AckedBy != "" || a.Escalated != nil || a.ShelvedUntil != nil || now.Sub(a.Since) < m.escalateAfter {
			continue
		}
		t := now
		a.Escalated = &t
		m.events.WithLabelValues("escalate").Inc()
		m.log.Warn("alert escalated: not acknowledged in time", "screen", a.Screen, "panel", a.Panel, "tags", a.Tags, "after", m.escalateAfter)
		m.queue(a, "escalate", now)
		if m.notify != nil {
			m.notify(*a, "escalate")
		}
		touched = append(touched, a)
	}
	touch := m.touch
	var screens [][2]string
	for _, a := range touched {
		screens = append(screens, [2]string{a.Screen, a.Panel})
	}
	m.mu.Unlock()
	if touch != nil {
		for _, sp := range screens {
			touch(sp[0], sp[1])
		}
	}
}

// SetNotify sets who is told of every transition (Alertmanager).
func (m *Manager) SetNotify(n Notify) {
	m.mu.Lock()
	m.notify = n
	m.mu.Unlock()
}

// Active are the active alerts, copies.
func (m *Manager) Active() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Alert, 0, len(m.active))
	for _, a := range m.active {
		out = append(out, *a)
	}
	return out
}

// SetTouch sets what re-publishes a panel after an acknowledgement.
func (m *Manager) SetTouch(touch func(screen, panel string)) {
	m.mu.Lock()
	m.touch = touch
	m.mu.Unlock()
}

// Alert takes an event from the panel engine. It never blocks: the event's
// point is written by Run.
func (m *Manager) Alert(ev panel.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active[ev.Key]
	kind := "raise"
	switch {
	case ev.Status == panel.StatusOK:
		if a == nil {
			return
		}
		kind = "clear"
		t := ev.Time
		a.Cleared = &t
		if ev.Value != nil {
			a.Value = ev.Value
		}
		delete(m.active, ev.Key)
		m.forget(a)
		m.cleared = append(m.cleared, a)
		if len(m.cleared) > keepCleared {
			m.cleared = m.cleared[len(m.cleared)-keepCleared:]
		}
		m.log.Info("alert cleared", "screen", a.Screen, "panel", a.Panel, "tags", a.Tags, "was", a.Status)
	case a != nil:
		kind = "change"
		if ev.Status.Rank() < a.Status.Rank() {
			a.AckedBy, a.AckedName, a.AckedAt = "", "", nil // worse: to be acknowledged again
		}
		a.Status, a.Value, a.Cases, a.Threshold, a.Below = ev.Status, ev.Value, ev.Cases, ev.Threshold, ev.Below
		m.log.Warn("alert changed", "screen", a.Screen, "panel", a.Panel, "tags", a.Tags, "status", a.Status)
	default:
		a = &Alert{ID: newID(), key: ev.Key, Screen: ev.Screen, Panel: ev.Panel, Title: ev.Title, Tags: ev.Tags,
			Status: ev.Status, Value: ev.Value, Since: ev.Time, Cases: ev.Cases, Threshold: ev.Threshold, Below: ev.Below}
		m.active[ev.Key] = a
		m.takePending(a)
		m.log.Warn("alert raised", "screen", a.Screen, "panel", a.Panel, "tags", a.Tags, "status", a.Status)
	}
	m.events.WithLabelValues(kind).Inc()
	m.countLocked()
	m.queue(a, kind, ev.Time)
	if m.notify != nil {
		m.notify(*a, kind)
	}
}

// Refresh keeps an active alert's value and cases current while its
// status stays: more cases overdue, or fewer. It records no event.
func (m *Manager) Refresh(key string, value float64, cases []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.active[key]; a != nil {
		a.Value, a.Cases = &value, slices.Clone(cases)
	}
}

func (m *Manager) countLocked() {
	n := map[panel.Status]float64{}
	for _, a := range m.active {
		n[a.Status]++
	}
	for _, s := range []panel.Status{panel.StatusWarn, panel.StatusCrit, panel.StatusStale} {
		m.gauge.WithLabelValues(string(s)).Set(n[s])
	}
}

// queue hands an event's point to Run, or logs that it could not.
func (m *Manager) queue(a *Alert, kind string, at time.Time) {
	pt := feed.Point{Measurement: Measurement, Time: at}
	pt.Tags = append(pt.Tags, feed.Tag{Key: "panel", Value: a.Panel}, feed.Tag{Key: "screen", Value: a.Screen})
	for _, k := range sortedKeys(a.Tags) {
		if k != "panel" && k != "screen" {
			pt.Tags = append(pt.Tags, feed.Tag{Key: k, Value: a.Tags[k]})
		}
	}
	sort.Slice(pt.Tags, func(i, j int) bool { return pt.Tags[i].Key < pt.Tags[j].Key })
	str := func(s string) lineprotocol.Value { v, _ := lineprotocol.StringValue(s); return v }
	pt.Fields = append(pt.Fields, feed.Field{Key: "acked_by", Value: str(a.AckedBy)}, feed.Field{Key: "event", Value: str(kind)},
		feed.Field{Key: "id", Value: str(a.ID)}, feed.Field{Key: "status", Value: str(string(a.Status))})
	if a.Value != nil {
		if v, ok := lineprotocol.FloatValue(*a.Value); ok {
			pt.Fields = append(pt.Fields, feed.Field{Key: "value", Value: v})
		}
	}
	select {
	case m.writes <- []feed.Point{pt}:
	default:
		m.log.Error("alert events arrive faster than they are stored: one is not in InfluxDB", "panel", a.Panel, "event", kind)
	}
}

// Run writes alert events until stop is closed, then the ones queued.
func (m *Manager) Run(stop <-chan struct{}) {
	defer close(m.done)
	write := func(pts []feed.Point) {
		m.store(pts, func(err error) {
			if err != nil {
				m.log.Error("an alert event could not be stored", "err", err)
			}
		})
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			m.escalate()
		case pts := <-m.writes:
			write(pts)
		case <-stop:
			for {
				select {
				case pts := <-m.writes:
					write(pts)
				default:
					return
				}
			}
		}
	}
}

// Mark tells the panel engine how an active alert stands.
func (m *Manager) Mark(key string) *panel.Mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active[key]
	if a == nil {
		return nil
	}
	return &panel.Mark{ID: a.ID, Status: a.Status, Since: a.Since, AckedBy: a.AckedBy, AckedName: a.AckedName, AckedAt: a.AckedAt,
		Assignee: a.Assignee, Escalated: a.Escalated != nil, ShelvedUntil: a.ShelvedUntil}
}

// ErrNotFound is an alert that is not active.
var ErrNotFound = errors.New("no such active alert")

// Ack records that who (an actor, and the name people know them by) has
// seen an active alert, with what they wrote (may be empty); every screen
// shows it.
func (m *Manager) Ack(id, who, name, comment string) (Alert, error) {
	return m.change(id, "ack", func(a *Alert, now time.Time) {
		a.AckedBy, a.AckedName, a.AckedAt, a.AckComment = who, name, &now, comment
	})
}

// Assign records who must act on an active alert (a person or a
// department; "" takes the assignment back), and who said so.
func (m *Manager) Assign(id, to, by string) (Alert, error) {
	return m.change(id, "assign", func(a *Alert, now time.Time) {
		a.Assignee, a.AssignedBy, a.AssignedAt = to, by, &now
		if to == "" {
			a.AssignedBy, a.AssignedAt = "", nil
		}
	})
}

// activeByID is the active alert with that ID, or nil. Called with m.mu
// held.
func (m *Manager) activeByID(id string) *Alert {
	for _, a := range m.active {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// ErrNotStale is a hand resolution of an alert that is not stale: an
// alert of a value clears when the value does.
var ErrNotStale = errors.New("only a stale alert (a silent feed) is resolved by hand: a threshold alert clears with its value")

// Resolve clears a stale alert by hand (a sensor taken away, say): it is
// listed as cleared by who, with why. It is raised again if its feed
// speaks and falls silent again, or after a restart if it is still
// silent.
func (m *Manager) Resolve(id, by, comment string) (Alert, error) {
	m.mu.Lock()
	a := m.activeByID(id)
	switch {
	case a == nil:
		m.mu.Unlock()
		return Alert{}, ErrNotFound
	case a.Status != panel.StatusStale:
		m.mu.Unlock()
		return Alert{}, ErrNotStale
	}
	now := m.now().UTC()
	a.Cleared, a.ResolvedBy, a.ResolvedComment = &now, by, comment
	delete(m.active, a.key)
	m.forget(a)
	m.cleared = append(m.cleared, a)
	if len(m.cleared) > keepCleared {
		m.cleared = m.cleared[len(m.cleared)-keepCleared:]
	}
	m.log.Info("stale alert resolved by hand", "screen", a.Screen, "panel", a.Panel, "tags", a.Tags, "by", by)
	m.events.WithLabelValues("resolve").Inc()
	m.countLocked()
	m.queue(a, "resolve", now)
	if m.notify != nil {
		m.notify(*a, "clear")
	}
	out, touch := *a, m.touch
	m.mu.Unlock()
	if touch != nil {
		touch(out.Screen, out.Panel)
	}
	return out, nil
}

// Shelve puts an active alert aside until until: silenced in
// Alertmanager, not escalated, marked on every wall.
func (m *Manager) Shelve(id string, until time.Time, by, comment string) (Alert, error) {
	return m.change(id, "shelve", func(a *Alert, _ time.Time) {
		u := until.UTC()
		a.ShelvedUntil, a.ShelvedBy, a.ShelveComment = &u, by, comment
	})
}

// Unshelve ends an alert's shelving before its time.
func (m *Manager) Unshelve(id string) (Alert, error) {
	return m.change(id, "unshelve", func(a *Alert, _ time.Time) {
		a.ShelvedUntil, a.ShelvedBy, a.ShelveComment = nil, "", ""
	})
}

// change applies an operator's action to an active alert, records it,
// tells the notifier and every screen.
func (m *Manager) change(id, kind string, apply func(a *Alert, now time.Time)) (Alert, error) {
	m.mu.Lock()
	a := m.activeByID(id)
	if a == nil {
		m.mu.Unlock()
		return Alert{}, ErrNotFound
	}
	now := m.now().UTC()
	if s := m.shared; s != nil {
		// Every instance first: the change is made only once the cluster
		// has it.
		next := *a
		apply(&next, now)
		key := SharedKey(a.key)
		m.mu.Unlock()
		if err := s.Put(key, operatorOf(&next, now)); err != nil {
			return Alert{}, err
		}
		m.mu.Lock()
		if a = m.activeByID(id); a == nil {
			m.mu.Unlock()
			return Alert{}, ErrNotFound
		}
	}
	apply(a, now)
	m.events.WithLabelValues(kind).Inc()
	m.queue(a, kind, now)
	if m.notify != nil {
		m.notify(*a, kind)
	}
	out, touch := *a, m.touch
	m.mu.Unlock()
	if touch != nil {
		touch(out.Screen, out.Panel) // outside the lock: the engine takes its own
	}
	return out, nil
}

// List returns the active alerts, worst and oldest first, then the cleared
// ones, newest first.
func (m *Manager) List() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Alert, 0, len(m.active)+len(m.cleared))
	for _, a := range m.active {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := out[i].Status.Rank(), out[j].Status.Rank(); ri != rj {
			return ri < rj // the worst first
		}
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].key < out[j].key // a stable order for alerts raised together
	})
	for i := len(m.cleared) - 1; i >= 0; i-- {
		out = append(out, *m.cleared[i])
	}
	return out
}

// Retain clears the active alerts of panels that no longer exist.
func (m *Manager) Retain(exists func(screen, panel string) bool) {
	m.mu.Lock()
	var gone []string
	for k, a := range m.active {
		if !exists(a.Screen, a.Panel) {
			gone = append(gone, k)
		}
	}
	m.mu.Unlock()
	for _, k := range gone {
		m.mu.Lock()
		a := m.active[k]
		m.mu.Unlock()
		if a != nil {
			m.Alert(panel.Event{Key: k, Screen: a.Screen, Panel: a.Panel, Status: panel.StatusOK, From: a.Status, Time: m.now().UTC()})
		}
	}
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "al_" + hex.EncodeToString(b)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
