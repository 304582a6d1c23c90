package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/wal"
)

// walCommits returns what the write-ahead log tells of each commit, as
// histograms of its duration (a slow disk shows here first: nothing is
// acknowledged to the broker until the commit ends) and of its size.
func walCommits(reg prometheus.Registerer) func(int, time.Duration) {
	took := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cityscreen_wal_commit_seconds", Help: "Time to write and fsync one commit of the write-ahead log; messages are acknowledged when it ends.",
		Buckets: []float64{5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1},
	})
	records := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cityscreen_wal_commit_records", Help: "Records made durable by one commit of the write-ahead log.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	reg.MustRegister(took, records)
	return func(n int, d time.Duration) {
		took.Observe(d.Seconds())
		records.Observe(float64(n))
	}
}

// walCollector reports the write-ahead log's state.
func walCollector(w *wal.Log) prometheus.Collector {
	return &walMetrics{w: w,
		bytes:    prometheus.NewDesc("cityscreen_wal_bytes", "Bytes in the write-ahead log's segment files; a segment is deleted once it is full and all of it is in InfluxDB, so this includes forwarded readings of the current segment.", nil, nil),
		max:      prometheus.NewDesc("cityscreen_wal_max_bytes", "The write-ahead log's limit.", nil, nil),
		segments: prometheus.NewDesc("cityscreen_wal_segments", "Segment files of the write-ahead log.", nil, nil),
		full:     prometheus.NewDesc("cityscreen_wal_full", "1 while the write-ahead log is full and messages are not acknowledged.", nil, nil),
		torn:     prometheus.NewDesc("cityscreen_wal_torn_bytes", "Bytes of torn tail cut when the log was opened (never acknowledged).", nil, nil),
	}
}

type walMetrics struct {
	w                                *wal.Log
	bytes, max, segments, full, torn *prometheus.Desc
}

func (m *walMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.bytes
	ch <- m.max
	ch <- m.segments
	ch <- m.full
	ch <- m.torn
}

func (m *walMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.w.Stats()
	full := 0.0
	if st.Full {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(m.max, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(m.segments, prometheus.GaugeValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(m.full, prometheus.GaugeValue, full)
	ch <- prometheus.MustNewConstMetric(m.torn, prometheus.GaugeValue, float64(st.TornBytes))
}
