package panel

import "time"

// Event is a change of a panel's (or a group's) alert status: raised
// (warn, crit or stale), changed, or cleared (ok).
type Event struct {
	Key    string            `json:"key"` // screen/panel{tags}: the alert's identity
	Screen string            `json:"screen"`
	Panel  string            `json:"panel"`
	Title  string            `json:"title"`
	Tags   map[string]string `json:"tags,omitempty"`
	Status Status            `json:"status"` // warn, crit, stale; ok when cleared
	From   Status            `json:"from"`
	Value  *float64          `json:"value"`
	Time   time.Time         `json:"time"`
	// Cases are the IDs of the cases an overdue alert is about, most
	// overdue first, at most MaxAlertCases.
	Cases []string `json:"cases,omitempty"`
	// Threshold is the threshold the value crossed (warn's or crit's),
	// Below whether low values are the trouble.
	Threshold *float64 `json:"threshold,omitempty"`
	Below     bool     `json:"below,omitempty"`
}

// MaxAlertCases caps the case IDs an alert carries.
const MaxAlertCases = 100

// Refresher is what Alerts may also be: told an active alert's value and
// cases as they change while its status stays (more cases overdue).
type Refresher interface {
	Refresh(key string, value float64, cases []string)
}

// Alerts receive alert events and say how an active alert stands (its ID,
// who acknowledged it). Alert is called with the panel's lock held: it must
// not call back into the Engine.
type Alerts interface {
	Alert(ev Event)
	Mark(key string) *Mark
}

// Mark is an active alert as a screen shows it.
type Mark struct {
	ID      string    `json:"id"`
	Status  Status    `json:"status"`
	Since   time.Time `json:"since"`
	AckedBy string    `json:"acked_by,omitempty"`
	// AckedName is who acknowledged it, as people know them.
	AckedName string     `json:"acked_name,omitempty"`
	AckedAt   *time.Time `json:"acked_at,omitempty"`
	// Assignee is who the alert is assigned to (a person or a department).
	Assignee string `json:"assignee,omitempty"`
	// Escalated: not acknowledged within the time allowed, so sent on to
	// the duty leader.
	Escalated bool `json:"escalated,omitempty"`
	// ShelvedUntil is when the alert's shelving ends, if it is shelved.
	ShelvedUntil *time.Time `json:"shelved_until,omitempty"`
}

// alertState is the debounced status of one series.
type alertState struct {
	status Status   // ok, warn, crit or stale
	over   [3]int64 // since when the value has been at least warn [1], crit [2]; 0: it is not
}

// level is how far past its thresholds a value is: 0 (ok), 1 (warn) or 2
// (crit); statusOf turns it back.
var level = map[Status]int{StatusOK: 0, StatusWarn: 1, StatusCrit: 2}

var statusOf = [3]Status{StatusOK, StatusWarn, StatusCrit}

// classify gives a value's status by the thresholds, the value moved by
// shift toward trouble: with the hysteresis as shift, a raised status
// holds until the value is that far back on the good side.
func classify(t *Thresholds, x, shift float64) Status {
	if t == nil {
		return StatusOK
	}
	past := func(th *float64) bool {
		if th == nil {
			return false
		}
		if t.Below {
			return x-shift <= *th
		}
		return x+shift >= *th
	}
	switch {
	case past(t.Crit):
		return StatusCrit
	case past(t.Warn):
		return StatusWarn
	}
	return StatusOK
}

// assess moves a series' alert state on with a value x (ok false: no
// value in the window) whose newest reading is at newest, and reports the
// status to show. Changes go to emit.
func (p *panel) assess(st *alertState, key string, x float64, ok bool, newest, staleBefore, now int64, emit func(from, to Status)) Status {
	if st.status == "" {
		// A panel made anew (its screen changed) takes up the alert its
		// predecessor left, so that it can clear it.
		st.status = StatusOK
		if m := p.mark(key); m != nil && m.Status != "" {
			st.status = m.Status
		}
	}
	set := func(to Status) {
		if to != st.status {
			from := st.status
			st.status = to
			emit(from, to)
		}
	}
	switch {
	case newest > 0 && newest <= staleBefore:
		// Silent past stale_after: stale, raised until data comes back.
		set(StatusStale)
		if !ok {
			return StatusNoData
		}
		return StatusStale
	case !ok:
		// No value (a calendar period just began): nothing to alert on.
		set(StatusOK)
		return StatusNoData
	}
	t := p.spec.Thresholds
	raw := classify(t, x, 0)
	if st.status == StatusStale {
		set(StatusOK) // data is back: judged afresh
	}
	var hold time.Duration
	if t != nil {
		hold = t.For
	}
	// The worst level the value has held for the minimum duration.
	target := 0
	for l := 1; l <= 2; l++ {
		switch {
		case level[raw] < l:
			st.over[l] = 0
		case st.over[l] == 0:
			st.over[l] = now
		}
		if st.over[l] != 0 && now-st.over[l] >= int64(hold) {
			target = l
		}
	}
	cur := level[st.status]
	switch {
	case target > cur:
		set(statusOf[target])
	case level[raw] < cur && t == nil:
		set(StatusOK) // the thresholds are gone
	case level[raw] < cur:
		// Clears (or steps down) only once past the hysteresis.
		if eased := classify(t, x, t.Hysteresis); level[eased] < cur {
			set(eased)
		}
	}
	return st.status
}
