package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// newMetrics makes the ingester's metrics, labelled with its path, and
// registers them with reg (nil: none).
func (in *Ingester) newMetrics(reg prometheus.Registerer) {
	path := prometheus.Labels{"path": in.opts.Path}
	in.overloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cityscreen_ingest_overload_rejects_total", Help: "Messages quarantined because the decoding queue was full.", ConstLabels: path,
	})
	in.unacked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cityscreen_ingest_unacknowledged_total", Help: "Messages left unacknowledged because they could not be made durable; the broker delivers them again.", ConstLabels: path,
	})
	in.connects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cityscreen_mqtt_connects_total", Help: "Successful connections to the MQTT broker.", ConstLabels: path,
	})
	decode := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cityscreen_ingest_decode_seconds", Help: "Time to decode one message into points.", ConstLabels: path,
		Buckets: []float64{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2},
	})
	in.decode = decode
	ack := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cityscreen_ingest_ack_seconds", Help: "Time from a message's arrival to its acknowledgement, once its readings are durable.", ConstLabels: path,
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	})
	in.ack = ack
	if reg != nil {
		reg.MustRegister(in.overloads, in.unacked, in.connects, decode, ack,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_ingest_queued_messages", Help: "Messages waiting for a decoding worker.", ConstLabels: path,
			}, func() float64 { return float64(len(in.queue)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_mqtt_connected", Help: "1 while every connection to the MQTT broker is up and subscribed.", ConstLabels: path,
			}, func() float64 {
				if in.Connected() {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_mqtt_connections", Help: "Connections to the MQTT broker up and subscribed.", ConstLabels: path,
			}, func() float64 { up, _ := in.up(); return float64(up) }))
		if !in.opts.Mirror {
			reg.MustRegister(newFeedCollector(in.Feeds))
		}
		if in.drops != nil {
			reg.MustRegister(in.drops.metrics()...)
		}
	}
}

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
