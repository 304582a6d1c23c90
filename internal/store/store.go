// Package store writes points to InfluxDB (2.x, or 1.8 through its v2 API).
//
// Write never blocks: points are buffered in memory and sent in batches by
// Run, at most BatchSize at a time and at least every FlushInterval. A batch
// that fails for a reason that may pass (the network, a 5xx, a 429) is kept
// and retried with backoff, honouring Retry-After; one that InfluxDB refuses
// (another 4xx) is logged and counted, since sending it again cannot help.
// While InfluxDB is unreachable the buffer holds up to MaxBuffered points;
// beyond that the oldest are dropped, counted and logged. Write, Ready and
// Stats are safe for concurrent use.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Options configure a Store. URL and Bucket are required.
type Options struct {
	URL    string
	Org    string // "-" for InfluxDB 1.8
	Bucket string // db/rp for InfluxDB 1.8
	Token  string // user:password for InfluxDB 1.8; never logged
	// BatchSize is the most points in one write; 0 means 5000.
	BatchSize int
	// FlushInterval is the longest a point waits; 0 means 1s.
	FlushInterval time.Duration
	// MaxBuffered points are held while writes fail; 0 means 1000000.
	MaxBuffered int
	// Timeout bounds one write; 0 means 10s.
	Timeout time.Duration
	// MaxBackoff caps the wait between retries; 0 means 30s.
	MaxBackoff time.Duration
}

// Store batches points to InfluxDB.
type Store struct {
	opts   Options
	log    *slog.Logger
	client influxdb2.Client
	writer api.WriteAPIBlocking

	mu       sync.Mutex
	pending  []feed.Point
	inflight int           // points of the batch being written
	backoff  time.Duration // wait before the next retry while writes fail
	kick     chan struct{} // a full batch is waiting
	lastErr  error         // of the last write; nil once one succeeds

	written  prometheus.Counter
	failures *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	buffered prometheus.GaugeFunc
	latency  prometheus.Histogram
	failing  prometheus.Gauge
}

// New returns a Store; it connects lazily, on the first write.
func New(opts Options, log *slog.Logger, reg prometheus.Registerer) *Store {
	if opts.BatchSize == 0 {
		opts.BatchSize = 5000
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Second
	}
	if opts.MaxBuffered == 0 {
		opts.MaxBuffered = 1_000_000
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	clientOpts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(opts.Timeout / time.Second))
	client := influxdb2.NewClientWithOptions(opts.URL, opts.Token, clientOpts)
	s := &Store{
		opts:   opts,
		log:    log.With("component", "store"),
		client: client,
		writer: client.WriteAPIBlocking(opts.Org, opts.Bucket),
		kick:   make(chan struct{}, 1),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_store_points_written_total", Help: "Points InfluxDB accepted.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_store_write_errors_total", Help: "Failed writes to InfluxDB, by whether they are retried.",
		}, []string{"retried"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_store_dropped_points_total", Help: "Points not stored: refused by InfluxDB, or dropped from a full buffer.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cityscreen_store_write_seconds", Help: "Duration of writes to InfluxDB.", Buckets: prometheus.DefBuckets,
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cityscreen_store_failing", Help: "1 while writes to InfluxDB are failing and being retried.",
		}),
	}
	s.buffered = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cityscreen_store_buffered_points", Help: "Points waiting to be written to InfluxDB.",
	}, func() float64 { return float64(s.Buffered()) })
	// Every reason shows in /metrics from the start, at 0.
	for _, reason := range []string{"refused", "buffer_full", "shutdown", "unencodable"} {
		s.dropped.WithLabelValues(reason)
	}
	s.failures.WithLabelValues("true")
	s.failures.WithLabelValues("false")
	if reg != nil {
		reg.MustRegister(s.written, s.failures, s.dropped, s.buffered, s.latency, s.failing)
	}
	return s
}

// Write queues points for storage. It never blocks on InfluxDB.
func (s *Store) Write(points []feed.Point) {
	s.mu.Lock()
	s.pending = append(s.pending, points...)
	over := len(s.pending) - s.opts.MaxBuffered
	if over > 0 {
		s.pending = append(s.pending[:0:0], s.pending[over:]...)
	}
	full := len(s.pending) >= s.opts.BatchSize
	s.mu.Unlock()
	s.dropOldest(over)
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) dropOldest(n int) {
	if n > 0 {
		s.dropped.WithLabelValues("buffer_full").Add(float64(n))
		s.log.Error("storage buffer full: dropped the oldest points", "dropped", n, "max_buffered", s.opts.MaxBuffered)
	}
}

// Buffered returns how many points wait to be written, or are being written.
func (s *Store) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) + s.inflight
}

// Ready reports nil when InfluxDB answers and the last write, if any,
// succeeded; otherwise why not.
func (s *Store) Ready(ctx context.Context) error {
	s.mu.Lock()
	lastErr := s.lastErr
	s.mu.Unlock()
	if lastErr != nil {
		return fmt.Errorf("writes to InfluxDB are failing: %w", lastErr)
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

// Run sends batches until ctx ends, then tries, within drainTimeout, to
// write what is left.
func (s *Store) Run(ctx context.Context, drainTimeout time.Duration) {
	defer s.client.Close()
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			s.drain(drainTimeout)
			return
		case <-tick.C:
		case <-s.kick:
		}
		if time.Now().Before(retryAt) {
			continue
		}
		retryAt = time.Time{}
		for s.Buffered() > 0 {
			var retry *retryError
			if err := s.flush(ctx); errors.As(err, &retry) {
				retryAt = time.Now().Add(retry.after)
				break
			}
		}
	}
}

func (s *Store) drain(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for s.Buffered() > 0 && ctx.Err() == nil {
		var retry *retryError
		if err := s.flush(ctx); errors.As(err, &retry) {
			break
		}
	}
	if n := s.Buffered(); n > 0 {
		s.dropped.WithLabelValues("shutdown").Add(float64(n))
		s.log.Error("points not stored at shutdown", "points", n)
	}
}

type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// flush writes the oldest batch. On a retryable failure the batch goes
// back to the front of the buffer; on a refusal it is dropped and counted.
func (s *Store) flush(ctx context.Context) error {
	s.mu.Lock()
	n := min(len(s.pending), s.opts.BatchSize)
	batch := s.pending[:n:n]
	s.pending = s.pending[n:]
	s.inflight = n
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	for i := range batch {
		batch[i].AppendLine(&enc)
	}
	if err := enc.Err(); err != nil {
		// A point the decoders let through but line protocol cannot hold.
		s.done(nil)
		s.dropped.WithLabelValues("unencodable").Add(float64(n))
		s.log.Error("points cannot be encoded as line protocol", "points", n, "err", err)
		return err
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	err := s.writer.WriteRecord(wctx, string(enc.Bytes()))
	cancel()
	s.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		s.done(nil)
		s.written.Add(float64(n))
		s.failing.Set(0)
		return nil
	}
	var herr *ihttp.Error
	if errors.As(err, &herr) && herr.StatusCode >= 400 && herr.StatusCode < 500 && herr.StatusCode != 429 {
		s.done(err)
		s.failures.WithLabelValues("false").Inc()
		s.dropped.WithLabelValues("refused").Add(float64(n))
		s.log.Error("InfluxDB refused a batch", "points", n, "status", herr.StatusCode, "err", err)
		return err
	}
	after := s.requeue(batch, err)
	if herr != nil && herr.RetryAfter > 0 {
		after = time.Duration(herr.RetryAfter) * time.Second
	}
	s.failures.WithLabelValues("true").Inc()
	s.failing.Set(1)
	s.log.Warn("write to InfluxDB failed; will retry", "points", n, "retry_in", after, "err", err)
	return &retryError{err: err, after: after}
}

// done ends a batch that is not coming back: written, or refused with err.
func (s *Store) done(err error) {
	s.mu.Lock()
	s.inflight = 0
	s.lastErr = err
	if err == nil {
		s.backoff = 0
	}
	if len(s.pending) == 0 {
		s.pending = nil // let the array go
	}
	s.mu.Unlock()
}

// requeue puts a failed batch back in front, dropping the oldest points if
// the buffer overflows meanwhile, and returns the wait before the next
// try: doubling from 1s up to MaxBackoff.
func (s *Store) requeue(batch []feed.Point, err error) time.Duration {
	s.mu.Lock()
	s.inflight = 0
	s.lastErr = err
	s.pending = append(batch, s.pending...)
	over := len(s.pending) - s.opts.MaxBuffered
	if over > 0 {
		s.pending = s.pending[over:]
	}
	s.backoff = min(max(2*s.backoff, time.Second), s.opts.MaxBackoff)
	after := s.backoff
	s.mu.Unlock()
	s.dropOldest(over)
	return after
}
