package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Operator is what people did to an alert: the acknowledgement,
// assignment and shelving every instance of a cluster shows alike. At is
// when it was last done. It holds while the alert is active: the first
// instance to clear the alert deletes it, so that it does not carry over
// to the next raise, and an instance that raises the alert later (started
// meanwhile) takes it.
type Operator struct {
	At time.Time `json:"at"`
	Actions
}

// Shared is where a Manager keeps what people did to alerts when several
// instances evaluate the same panels (a cluster). Put keeps op for the
// alert of key everywhere, or fails and nothing is done; Delete forgets
// it; Watch calls fn with every operator record, this instance's and
// others' (nil: deleted).
type Shared interface {
	Put(key string, op Operator) error
	Delete(key string) error
	Watch(fn func(key string, op *Operator))
}

// keepPending is how long an action is kept for an alert not (yet) raised
// here, should no instance have deleted it when the alert cleared (all
// were stopped then): longer than the longest shelving.
const keepPending = 8 * 24 * time.Hour

// SharedKey is the key of an alert's records: its panel and group, hashed
// to fit a topic level.
func SharedKey(alertKey string) string {
	sum := sha256.Sum256([]byte(alertKey))
	return hex.EncodeToString(sum[:12])
}

func operatorOf(a *Alert, at time.Time) Operator { return Operator{At: at, Actions: a.Actions} }

// setOperator makes a's actions op's, and reports whether any changed.
func setOperator(a *Alert, op Operator) bool {
	changed := !sameActions(a.Actions, op.Actions)
	a.Actions = op.Actions
	return changed
}

// sameActions compares actions by value (their times, not pointers).
func sameActions(x, y Actions) bool {
	eqT := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	return x.AckedBy == y.AckedBy && x.AckedName == y.AckedName && eqT(x.AckedAt, y.AckedAt) && x.AckComment == y.AckComment &&
		x.Assignee == y.Assignee && x.AssignedBy == y.AssignedBy && eqT(x.AssignedAt, y.AssignedAt) &&
		eqT(x.ShelvedUntil, y.ShelvedUntil) && x.ShelvedBy == y.ShelvedBy && x.ShelveComment == y.ShelveComment
}

// Share keeps people's actions on alerts in s from now on, and applies
// those s holds and receives: to the active alert they were about, or,
// for an alert not raised here yet, when it is.
func (m *Manager) Share(s Shared) {
	m.mu.Lock()
	m.shared = s
	m.pending = map[string]Operator{}
	m.mu.Unlock()
	s.Watch(m.applyShared)
}

// applyShared applies an action taken on any instance. It records no
// event and tells no notifier: the instance where it was taken does.
func (m *Manager) applyShared(key string, op *Operator) {
	m.mu.Lock()
	if op == nil {
		// Cleared on an instance: not carried over to the next raise. An
		// alert still active here keeps what it shows until it clears.
		delete(m.pending, key)
		m.mu.Unlock()
		return
	}
	var hit *Alert
	for _, a := range m.active {
		if SharedKey(a.key) == key {
			hit = a
		}
	}
	if hit == nil {
		if m.now().Sub(op.At) < keepPending {
			m.pending[key] = *op
		}
		m.mu.Unlock()
		return
	}
	changed := setOperator(hit, *op)
	screen, panel, touch := hit.Screen, hit.Panel, m.touch
	m.mu.Unlock()
	if changed && touch != nil {
		touch(screen, panel)
	}
}

// takePending applies to a newly raised alert an action taken on another
// instance while it was active there. The caller holds mu.
func (m *Manager) takePending(a *Alert) {
	if m.pending == nil {
		return
	}
	k := SharedKey(a.key)
	if op, ok := m.pending[k]; ok {
		delete(m.pending, k)
		setOperator(a, op)
	}
	for k, op := range m.pending {
		if m.now().Sub(op.At) > keepPending {
			delete(m.pending, k)
		}
	}
}

// forget deletes the cluster's record of a's actions once a has cleared
// here, if it has any. The caller holds mu; the deletion is made outside
// it.
func (m *Manager) forget(a *Alert) {
	if m.shared == nil || sameActions(a.Actions, Actions{}) {
		return
	}
	s, key, log := m.shared, SharedKey(a.key), m.log
	go func() {
		if err := s.Delete(key); err != nil {
			log.Warn("cannot tell the cluster an alert cleared: its acknowledgement may show on its next raise", "err", err)
		}
	}()
}
