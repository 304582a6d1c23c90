// Package store forwards the write-ahead log to InfluxDB (2.x, or 1.8
// through its v2 API).
//
// Run reads the log's records (each a message's points as line protocol)
// in order and writes them in batches of up to BatchSize points, at least
// every FlushInterval. A batch that fails for a reason that may pass (the
// network, a 5xx, a 429) is retried with backoff, honouring Retry-After,
// for as long as it takes: the log keeps it meanwhile. A batch that
// InfluxDB refuses (another 4xx, such as a field type conflict) is split
// in halves until the refused points are alone; those go to the quarantine
// with InfluxDB's reason, the rest are written. Segments of the log are
// deleted only once every point in them is written or quarantined, and
// where the forwarder got to is checkpointed, so that after a restart it
// resumes there (at worst a little earlier: a point written twice lands on
// the same key in InfluxDB and is not counted twice).
package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/wal"
)

// Quarantine keeps points InfluxDB refused. Refused must make the point
// durable before it returns: the log segment holding it is deleted next.
type Quarantine interface {
	Refused(line, reason string) error
}

// Options configure a Store. URL and Bucket are required.
type Options struct {
	URL    string
	Org    string // "-" for InfluxDB 1.8
	Bucket string // db/rp for InfluxDB 1.8
	Token  string // user:password for InfluxDB 1.8; never logged
	// TLS configures https:// URLs; nil means the defaults.
	TLS *tls.Config
	// BatchSize is the most points in one write; 0 means 5000.
	BatchSize int
	// FlushInterval is the longest a point waits to be sent; 0 means 1s.
	FlushInterval time.Duration
	// Timeout bounds one write; 0 means 10s.
	Timeout time.Duration
	// MaxBackoff caps the wait between retries; 0 means 10s.
	MaxBackoff time.Duration
	// Checkpoint is the file where the forwarder notes how far it got;
	// empty means none (a restart forwards the whole log again).
	Checkpoint string
}

// Forwarder states, as the cityscreen_store_state gauge and in Stats.
const (
	StateOK       = "ok"       // caught up, or writing
	StateRetrying = "retrying" // writes fail and are being retried
)

// Store forwards the log to InfluxDB.
type Store struct {
	opts   Options
	log    *slog.Logger
	wal    *wal.Log
	quar   Quarantine
	client influxdb2.Client
	writer api.WriteAPIBlocking

	mu         sync.Mutex
	state      string
	lastErr    error        // of the last write; nil once one succeeds
	pending    time.Time    // append time of the oldest record not yet written; zero when caught up
	lastCheck  time.Time    // when the checkpoint was last written
	lastEnd    wal.Position // end of the last batch written or quarantined
	progressed bool         // lastEnd is set

	written     prometheus.Counter
	quarantined prometheus.Counter
	failures    *prometheus.CounterVec
	latency     prometheus.Histogram
}

// The defaults of Options, which the configuration's influx settings
// share.
const (
	DefaultBatchSize     = 5000
	DefaultFlushInterval = time.Second
	DefaultTimeout       = 10 * time.Second
)

// New returns a Store forwarding w; it connects lazily, on the first write.
func New(opts Options, w *wal.Log, q Quarantine, log *slog.Logger, reg prometheus.Registerer) *Store {
	opts.BatchSize = cmp.Or(opts.BatchSize, DefaultBatchSize)
	opts.FlushInterval = cmp.Or(opts.FlushInterval, DefaultFlushInterval)
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.MaxBackoff = cmp.Or(opts.MaxBackoff, 10*time.Second)
	clientOpts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(max(opts.Timeout/time.Second, 1)))
	if opts.TLS != nil {
		clientOpts.SetTLSConfig(opts.TLS)
	}
	client := influxdb2.NewClientWithOptions(opts.URL, opts.Token, clientOpts)
	s := &Store{
		opts: opts, log: log.With("component", "store"), wal: w, quar: q, state: StateOK,
		client: client, writer: client.WriteAPIBlocking(opts.Org, opts.Bucket),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_store_points_written_total", Help: "Points InfluxDB accepted (a point written again after a restart counts again).",
		}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_store_points_quarantined_total", Help: "Points InfluxDB refused, kept in the quarantine with its reason.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_store_write_errors_total", Help: "Failed writes to InfluxDB, by whether they are retried.",
		}, []string{"retried"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cityscreen_store_write_seconds", Help: "Duration of writes to InfluxDB.", Buckets: prometheus.DefBuckets,
		}),
	}
	s.failures.WithLabelValues("true")
	s.failures.WithLabelValues("false")
	if reg != nil {
		reg.MustRegister(s.written, s.quarantined, s.failures, s.latency,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_store_backlog_seconds", Help: "Age of the oldest reading in the log not yet written to InfluxDB; 0 when caught up.",
			}, func() float64 { return s.Stats().Backlog.Seconds() }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_store_retrying", Help: "1 while writes to InfluxDB fail and are being retried.",
			}, func() float64 {
				if s.Stats().State == StateRetrying {
					return 1
				}
				return 0
			}))
	}
	return s
}

// Stats describe the forwarder.
type Stats struct {
	State   string
	Backlog time.Duration // age of the oldest reading not yet written
	LastErr error
}

// Stats returns the forwarder's state.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{State: s.state, LastErr: s.lastErr}
	if !s.pending.IsZero() {
		st.Backlog = time.Since(s.pending)
	}
	return st
}

// Ready reports nil when InfluxDB answers and the last write, if any,
// succeeded; otherwise why not.
func (s *Store) Ready(ctx context.Context) error {
	st := s.Stats()
	if st.State == StateRetrying {
		return fmt.Errorf("writes to InfluxDB are failing, backlog %s: %w", st.Backlog.Round(time.Second), st.LastErr)
	}
	ok, err := s.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("InfluxDB does not answer: %w", err)
	}
	if !ok {
		return errors.New("InfluxDB does not answer its ping")
	}
	return nil
}

// batch is what the forwarder has read and not yet written.
type batch struct {
	data   []byte
	points int
	first  time.Time    // append time of its first record
	end    wal.Position // where the record after it starts
	// due ends when the batch must be written (made with its first
	// record: one deadline a batch, not one a record); stop releases it.
	due  context.Context
	stop context.CancelFunc
}

// start begins a batch with a record appended at first.
func (b *batch) start(ctx context.Context, first time.Time, flush time.Duration) {
	b.first = first
	b.due, b.stop = context.WithDeadline(ctx, first.Add(flush))
}

// reset empties the batch, keeping its buffer.
func (b *batch) reset() {
	if b.stop != nil {
		b.stop()
	}
	*b = batch{data: b.data[:0]}
}

// Run forwards the log until ctx ends. Then, within drainTimeout, it
// writes what the log already holds (the caller stops appending first);
// what it cannot write stays in the log for the next start.
func (s *Store) Run(ctx context.Context, drainTimeout time.Duration) {
	defer s.client.Close()
	r := s.wal.NewReader(s.readCheckpoint())
	defer r.Close()
	defer func() { // where it got to, for the next start
		s.mu.Lock()
		end, ok := s.lastEnd, s.progressed
		s.mu.Unlock()
		if ok {
			s.writeCheckpoint(end)
		}
	}()
	// Writes outlive ctx by drainTimeout, so that a stop does not cut one
	// off halfway and the log's tail gets its chance.
	writeCtx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	go func() {
		select {
		case <-ctx.Done():
		case <-writeCtx.Done():
			return
		}
		select {
		case <-time.After(drainTimeout):
			stopWrites()
		case <-writeCtx.Done():
		}
	}()
	var b batch
	defer b.reset()
	for {
		wait, cancel := ctx, context.CancelFunc(func() {})
		switch {
		case ctx.Err() != nil:
			wait, cancel = context.WithTimeout(writeCtx, 50*time.Millisecond) // draining: only what is there
		case b.points > 0:
			wait = b.due
		}
		rec, err := r.Next(wait)
		cancel()
		switch {
		case err == nil:
			if b.points == 0 {
				b.start(ctx, rec.Time, s.opts.FlushInterval)
				s.setPending(rec.Time)
			}
			b.data = append(b.data, rec.Data...)
			b.points += bytes.Count(rec.Data, []byte{'\n'})
			b.end = rec.End
			if b.points < s.opts.BatchSize {
				continue
			}
		case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
			s.log.Error("reading the write-ahead log", "err", err)
			time.Sleep(time.Second)
			continue
		case b.points == 0 && ctx.Err() != nil && (writeCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded)):
			s.setPending(time.Time{})
			return // stopping, and caught up (or out of time)
		case b.points == 0:
			continue
		}
		if err := s.deliver(writeCtx, b.data, b.points); err != nil {
			s.log.Info("forwarder stopped with points still in the log; they are written at the next start", "err", err)
			return
		}
		s.done(b.end)
		b.reset()
	}
}

func (s *Store) setPending(t time.Time) {
	s.mu.Lock()
	s.pending = t
	s.mu.Unlock()
}

// done trims the log up to end and checkpoints, at most once a second
// (and when Run returns).
func (s *Store) done(end wal.Position) {
	if err := s.wal.Trim(end); err != nil {
		s.log.Error("cannot delete a forwarded segment", "err", err)
	}
	s.mu.Lock()
	s.pending = time.Time{}
	s.lastEnd, s.progressed = end, true
	due := time.Since(s.lastCheck) >= time.Second
	if due {
		s.lastCheck = time.Now()
	}
	s.mu.Unlock()
	if due {
		s.writeCheckpoint(end)
	}
}

// deliver writes data (n points of line protocol) until InfluxDB has it,
// splitting out what it refuses. It returns only when done or ctx ends.
func (s *Store) deliver(ctx context.Context, data []byte, n int) error {
	backoff := time.Duration(0)
	for {
		err := s.post(ctx, data)
		if err == nil {
			s.written.Add(float64(n))
			s.setState(StateOK, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var herr *ihttp.Error
		if errors.As(err, &herr) && herr.StatusCode >= 400 && herr.StatusCode < 500 && herr.StatusCode != 429 {
			s.failures.WithLabelValues("false").Inc()
			s.setState(StateOK, nil) // InfluxDB answers; it refuses some of this
			return s.split(ctx, data, n, err)
		}
		backoff = min(max(2*backoff, time.Second), s.opts.MaxBackoff)
		wait := backoff
		if herr != nil && herr.RetryAfter > 0 {
			wait = min(time.Duration(herr.RetryAfter)*time.Second, s.opts.MaxBackoff)
		}
		s.failures.WithLabelValues("true").Inc()
		s.setState(StateRetrying, err)
		s.log.Warn("write to InfluxDB failed; retrying", "points", n, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// split writes the halves of a refused batch separately, down to single
// points, and quarantines the points refused alone.
func (s *Store) split(ctx context.Context, data []byte, n int, refusal error) error {
	if n <= 1 {
		line := strings.TrimRight(string(data), "\n")
		reason := refusal.Error()
		if err := s.quar.Refused(line, reason); err != nil {
			return fmt.Errorf("quarantining a refused point: %w", err)
		}
		s.quarantined.Inc()
		s.log.Warn("InfluxDB refused a point; quarantined", "reason", reason)
		return nil
	}
	half := n / 2
	cut := 0
	for i := 0; i < half; i++ {
		cut += bytes.IndexByte(data[cut:], '\n') + 1
	}
	if err := s.deliver(ctx, data[:cut], half); err != nil {
		return err
	}
	return s.deliver(ctx, data[cut:], n-half)
}

func (s *Store) post(ctx context.Context, data []byte) error {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	err := s.writer.WriteRecord(wctx, string(data))
	s.latency.Observe(time.Since(start).Seconds())
	return err
}

func (s *Store) setState(state string, err error) {
	s.mu.Lock()
	s.state, s.lastErr = state, err
	s.mu.Unlock()
}

// readCheckpoint returns where the forwarder got to, or the start.
func (s *Store) readCheckpoint() wal.Position {
	if s.opts.Checkpoint == "" {
		return wal.Position{}
	}
	data, err := os.ReadFile(s.opts.Checkpoint)
	if err != nil {
		return wal.Position{}
	}
	seg, off, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
	a, err1 := strconv.ParseUint(seg, 10, 64)
	b, err2 := strconv.ParseInt(off, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		s.log.Warn("ignoring an unreadable checkpoint: forwarding the whole log again", "file", s.opts.Checkpoint)
		return wal.Position{}
	}
	return wal.Position{Seg: a, Off: b}
}

// writeCheckpoint replaces the checkpoint atomically. It is not fsynced:
// losing it only means forwarding some points again.
func (s *Store) writeCheckpoint(p wal.Position) {
	if s.opts.Checkpoint == "" {
		return
	}
	tmp := s.opts.Checkpoint + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", p.Seg, p.Off), 0o600); err != nil {
		s.log.Warn("cannot write the checkpoint", "err", err)
		return
	}
	if err := os.Rename(tmp, s.opts.Checkpoint); err != nil {
		s.log.Warn("cannot write the checkpoint", "err", err)
	}
}

// CheckpointPath is where a log in dir keeps the forwarder's checkpoint.
func CheckpointPath(dir string) string { return filepath.Join(dir, "forwarded") }
