package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// feedCollector reports each feed's counters as Prometheus counters.
type feedCollector struct {
	feeds                        []*feed.Feed
	received, accepted, rejected *prometheus.Desc
}

func newFeedCollector(feeds []*feed.Feed) *feedCollector {
	return &feedCollector{
		feeds:    feeds,
		received: prometheus.NewDesc("cityscreen_feed_messages_received_total", "Messages received per feed.", []string{"feed"}, nil),
		accepted: prometheus.NewDesc("cityscreen_feed_messages_accepted_total", "Messages decoded into points per feed.", []string{"feed"}, nil),
		rejected: prometheus.NewDesc("cityscreen_feed_messages_rejected_total", "Messages rejected per feed.", []string{"feed"}, nil),
	}
}

func (c *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.accepted
	ch <- c.rejected
}

func (c *feedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.feeds {
		st := f.Stats()
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(st.Received), f.ID())
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.Accepted), f.ID())
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected), f.ID())
	}
}
