package ingest

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// DropTopics are where brokers report how many messages they have dropped
// since they started because of their limits, for all their clients
// together: Mosquitto (max_inflight_messages, max_queued_messages; sent
// when the count changes and when the broker starts, every sys_interval
// at most, not retained) and mochi-mqtt, the embedded broker (a client's
// outbound queue full; retained, every second).
var DropTopics = []string{"$SYS/broker/publish/messages/dropped", "$SYS/broker/messages/dropped"}

// UptimeTopic comes every few seconds from brokers that publish $SYS
// statistics: it tells that they reach the subscriber.
const UptimeTopic = "$SYS/broker/uptime"

// StatsFilters are the subscriptions that follow a broker's count of
// dropped messages: DropTopics, and UptimeTopic to know the statistics
// come at all.
func StatsFilters() map[string]byte {
	filters := map[string]byte{UptimeTopic: 0}
	for _, t := range DropTopics {
		filters[t] = 0
	}
	return filters
}

// dropWatch follows the broker's count of dropped messages on a connection
// of its own (ClientID-stats, clean session, QoS 0): a message the broker
// drops never reaches cityscreen, so this count is the only trace of it
// that cityscreen can see. A rise is logged as a warning and the count is
// a metric.
type dropWatch struct {
	in       *Ingester
	client   mqtt.Client
	stopOnce sync.Once // Disconnect once: see conn.close

	mu   sync.Mutex
	last map[string]int64 // each topic's count as last reported

	count atomic.Int64 // the counts last reported, summed (0 before any)
	stats atomic.Bool  // the broker's $SYS statistics have come
	// lastDrop is when a report last said the broker dropped more (Unix
	// nanoseconds; 0 for never).
	lastDrop atomic.Int64
}

// BrokerDrops is what the broker has told of the messages it dropped
// because of its limits.
type BrokerDrops struct {
	// Stats tells that the broker's $SYS statistics reach cityscreen:
	// without them, no drops reported means nothing.
	Stats bool `json:"stats"`
	// Total is the broker's count since it started, for all its clients,
	// as last reported (0 before any report).
	Total int64 `json:"dropped_total"`
	// LastDrop is when a report last said the broker dropped more; nil
	// for never since cityscreen started.
	LastDrop *time.Time `json:"last_drop,omitempty"`
}

// BrokerDrops is what the broker has told of the messages it dropped
// because of its limits, and false when they are not followed
// (Options.WatchDrops).
func (in *Ingester) BrokerDrops() (BrokerDrops, bool) {
	w := in.drops
	if w == nil {
		return BrokerDrops{}, false
	}
	d := BrokerDrops{Stats: w.stats.Load(), Total: w.count.Load()}
	if ns := w.lastDrop.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		d.LastDrop = &t
	}
	return d, true
}

func newDropWatch(in *Ingester) *dropWatch {
	return &dropWatch{in: in, last: map[string]int64{}}
}

// metrics are the watch's collectors.
func (w *dropWatch) metrics() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cityscreen_broker_dropped_messages_total",
			Help: "Messages the MQTT broker reports it has dropped since it started because of its limits, for all its clients (" + strings.Join(DropTopics, ", ") + "); readings sent to cityscreen may be among them.",
		}, func() float64 { return float64(w.count.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cityscreen_broker_stats",
			Help: "1 once the MQTT broker's $SYS statistics have reached cityscreen (" + UptimeTopic + "), 0 while they have not: a broker that publishes none, or an ACL that withholds them.",
		}, func() float64 {
			if w.stats.Load() {
				return 1
			}
			return 0
		}),
	}
}

// start connects, retrying in the background until stop.
func (w *dropWatch) start() {
	in := w.in
	id := in.opts.ClientID + "-stats"
	filters := StatsFilters()
	o := in.keepConnecting(in.brokerOptions(id)).
		SetCleanSession(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { w.take(m.Topic(), string(m.Payload())) }).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.SubscribeMultiple(filters, nil)
			if !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
				in.log.Warn("could not follow the broker's count of dropped messages", "client_id", id, "err", tok.Error())
			}
		})
	w.client = in.opts.NewClient(o)
	w.client.Connect()
}

func (w *dropWatch) stop() {
	w.stopOnce.Do(func() {
		if w.client != nil {
			w.client.Disconnect(250)
		}
	})
}

// take is one message of the broker's statistics.
func (w *dropWatch) take(topic, payload string) {
	w.stats.Store(true)
	if topic != UptimeTopic {
		w.report(topic, payload)
	}
}

// report takes one of the broker's counts of dropped messages since it
// started.
func (w *dropWatch) report(topic, payload string) {
	log := w.in.log
	n, err := strconv.ParseInt(strings.TrimSpace(payload), 10, 64)
	if err != nil || n < 0 {
		log.Debug("not a count of dropped messages", "topic", topic, "payload", feed.Clip(payload))
		return
	}
	w.mu.Lock()
	last, known := w.last[topic]
	w.last[topic] = n
	var sum int64
	for _, c := range w.last {
		sum += c
	}
	w.mu.Unlock()
	w.count.Store(sum)
	const dropped = "the MQTT broker dropped messages because of its limits (max_inflight_messages, max_queued_messages): readings sent to cityscreen may be lost; see docs/reliability.md"
	switch {
	case !known && n > 0:
		// Mosquitto sends its count when it changes: some of these are new.
		w.lastDrop.Store(time.Now().UnixNano())
		log.Warn(dropped, "broker_dropped_total", n)
	case known && n > last:
		w.lastDrop.Store(time.Now().UnixNano())
		log.Warn(dropped, "dropped", n-last, "broker_dropped_total", n)
	case known && n < last:
		log.Info("the MQTT broker's count of dropped messages started again (the broker restarted)", "broker_dropped_total", n)
	}
}
