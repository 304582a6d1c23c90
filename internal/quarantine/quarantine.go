// Package quarantine keeps, durably, what cityscreen could not store:
// messages a feed rejected and points InfluxDB refused, each with its
// reason. It is a write-ahead log of JSON entries under the state
// directory; ingest acknowledges a rejected message only once its entry is
// on disk. When the quarantine outgrows its limit, its oldest segment is
// deleted, counted and logged. Its methods are safe for concurrent use.
package quarantine

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/wal"
)

// Kinds of entries.
const (
	KindRejected = "rejected" // a message a feed could not decode
	KindRefused  = "refused"  // a point InfluxDB would not take
)

// Entry is one quarantined message or point.
type Entry struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Feed    string    `json:"feed,omitempty"`
	Topic   string    `json:"topic,omitempty"`
	Reason  string    `json:"reason"`
	Payload []byte    `json:"payload"` // base64 in JSON: any bytes survive
}

// Quarantine is the durable store of entries.
type Quarantine struct {
	log      *slog.Logger
	wal      *wal.Log
	maxBytes int64
	dropped  prometheus.Counter
	entries  prometheus.Counter
}

// Open opens the quarantine in dir, holding at most about maxBytes.
func Open(dir string, maxBytes int64, log *slog.Logger, reg prometheus.Registerer) (*Quarantine, error) {
	w, err := wal.Open(wal.Options{Dir: dir, SegmentBytes: max(maxBytes/8, 4096), MaxBytes: 2 * maxBytes}, log)
	if err != nil {
		return nil, err
	}
	q := &Quarantine{
		log: log.With("component", "quarantine"), wal: w, maxBytes: maxBytes,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_quarantine_dropped_bytes_total", Help: "Bytes of the oldest quarantined entries deleted to stay within the quarantine's limit.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_quarantine_entries_total", Help: "Entries written to the quarantine.",
		}),
	}
	if reg != nil {
		reg.MustRegister(q.dropped, q.entries, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cityscreen_quarantine_bytes", Help: "Bytes the quarantine holds.",
		}, func() float64 { return float64(w.Stats().Bytes) }))
	}
	return q, nil
}

// Add writes an entry and calls done once it is durable.
func (q *Quarantine) Add(e Entry, done func(error)) {
	data, err := json.Marshal(e)
	if err != nil {
		done(err)
		return
	}
	for q.wal.Stats().Bytes+int64(len(data)) > q.maxBytes {
		n := q.wal.DropOldest()
		if n == 0 {
			break
		}
		q.dropped.Add(float64(n))
		q.log.Error("quarantine full: deleted its oldest entries", "bytes", n, "max_bytes", q.maxBytes)
	}
	q.entries.Inc()
	q.wal.Append(data, done)
}

// Refused quarantines a point InfluxDB refused, and returns once durable.
func (q *Quarantine) Refused(line, reason string) error {
	errc := make(chan error, 1)
	q.Add(Entry{Kind: KindRefused, Time: time.Now().UTC(), Reason: reason, Payload: []byte(line)}, func(err error) { errc <- err })
	return <-errc
}

// Each calls fn with every entry the quarantine holds, oldest first, as
// far as the entries written before the call.
func (q *Quarantine) Each(fn func(Entry)) error {
	st := q.wal.Stats()
	if st.Bytes == 0 {
		return nil
	}
	end := st.Committed
	r := q.wal.NewReader(wal.Position{})
	defer r.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		rec, err := r.Next(ctx)
		cancel()
		if err != nil {
			return err
		}
		var e Entry
		if err := json.Unmarshal(rec.Data, &e); err != nil {
			q.log.Warn("skipping an unreadable quarantine entry", "err", err)
		} else {
			fn(e)
		}
		if !rec.End.Less(end) {
			return nil
		}
	}
}

// Close makes what was queued durable and closes.
func (q *Quarantine) Close() error { return q.wal.Close() }
