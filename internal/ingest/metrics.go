package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// feedCollector reports each feed's counters as Prometheus counters.
type feedCollector struct {
	feeds                                             func() []*feed.Feed
	received, accepted, rejected, bytes, silent, rate *prometheus.Desc
}

func newFeedCollector(feeds func() []*feed.Feed) *feedCollector {
	return &feedCollector{
		feeds:    feeds,
		received: prometheus.NewDesc("cityscreen_feed_messages_received_total", "Messages received per feed.", []string{"feed"}, nil),
		accepted: prometheus.NewDesc("cityscreen_feed_messages_accepted_total", "Messages decoded into points per feed.", []string{"feed"}, nil),
		rejected: prometheus.NewDesc("cityscreen_feed_messages_rejected_total", "Messages rejected per feed.", []string{"feed"}, nil),
		bytes:    prometheus.NewDesc("cityscreen_feed_received_bytes_total", "Payload bytes received per feed.", []string{"feed"}, nil),
		silent:   prometheus.NewDesc("cityscreen_feed_silent", "1 while a feed has sent nothing for longer than its declared interval.", []string{"feed"}, nil),
		rate:     prometheus.NewDesc("cityscreen_feed_messages_per_second", "Mean message rate per feed over the last minute.", []string{"feed"}, nil),
	}
}

func (c *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.accepted
	ch <- c.rejected
	ch <- c.bytes
	ch <- c.silent
	ch <- c.rate
}

func (c *feedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.feeds() {
		st := f.Stats()
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(st.Received), f.ID())
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.Accepted), f.ID())
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected), f.ID())
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.Bytes), f.ID())
		silent := 0.0
		if st.Silent {
			silent = 1
		}
		ch <- prometheus.MustNewConstMetric(c.silent, prometheus.GaugeValue, silent, f.ID())
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, st.RatePerSecond, f.ID())
	}
}
