package panel

import (
	"encoding/json"
	"time"
)

// HistorySpec asks a panel to carry its trend: its aggregate over each Step
// for the last Span (the last 24 hours at 5-minute steps: 288 points).
type HistorySpec struct {
	Span time.Duration `yaml:"span" json:"span"`
	Step time.Duration `yaml:"step" json:"step"`
}

// maxHistoryPoints bounds a trend.
const maxHistoryPoints = 2000

// HistPoint is one step of a trend: the step's start and the aggregate of
// the readings in it. It is written as [unix milliseconds, value].
type HistPoint struct {
	T time.Time
	V float64
}

func (h HistPoint) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]float64{float64(h.T.UnixMilli()), h.V})
}

func (h *HistPoint) UnmarshalJSON(b []byte) error {
	var a [2]float64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	h.T, h.V = time.UnixMilli(int64(a[0])).UTC(), a[1]
	return nil
}

// trend keeps one bucket per step of a panel's history. Its memory is fixed
// by span/step.
type trend struct {
	step    int64 // nanoseconds
	buckets []bucket
	shown   int64  // the step last published, to send the trend when a step begins
	sent    []byte // the past steps last published, to send them when they change
}

func newTrend(h *HistorySpec) *trend {
	if h == nil {
		return nil
	}
	n := int(h.Span/h.Step) + 1
	return &trend{step: int64(h.Step), buckets: make([]bucket, n)}
}

// add records a reading in its step.
func (tr *trend) add(r reading, sketched bool) {
	slot := r.t / tr.step
	tr.buckets[uint64(slot)%uint64(len(tr.buckets))].add(slot, r, sketched)
}

// points are the trend's steps up to now that have readings, oldest first.
func (tr *trend) points(now int64, spec *Spec) []HistPoint {
	out := []HistPoint{}
	last := now / tr.step
	for slot := last - int64(len(tr.buckets)) + 1; slot <= last; slot++ {
		b := &tr.buckets[uint64(slot)%uint64(len(tr.buckets))]
		if b.slot != slot || b.count == 0 {
			continue
		}
		r := result{count: b.count, sum: b.sum, min: b.min, max: b.max, last: b.last, lastT: b.lastT, hits: b.hits, sketch: b.sketch}
		span := float64(tr.step) / 1e9
		if slot == last {
			span = float64(now-slot*tr.step) / 1e9 // the step so far
		}
		if x, ok := r.value(spec, span); ok && finite(x) {
			out = append(out, HistPoint{T: time.Unix(0, slot*tr.step).UTC(), V: x})
		}
	}
	return out
}
