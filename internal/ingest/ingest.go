package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Sink receives the points of accepted messages. It must not block for long.
type Sink interface {
	Accept(feedID string, points []feed.Point)
}

// Options configure an Ingester. URL is required.
type Options struct {
	URL      string
	ClientID string
	Username string
	Password string // never logged
	// ConnectTimeout bounds one connection attempt; 0 means 10s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the reconnect backoff; 0 means 30s.
	MaxReconnectInterval time.Duration
	// Workers decode in parallel; 0 means 4.
	Workers int
	// Queue is how many messages may wait for a worker; 0 means 65536.
	Queue int
}

// Ingester owns the MQTT connection and the decoding workers.
type Ingester struct {
	opts  Options
	log   *slog.Logger
	feeds []*feed.Feed
	sink  Sink
	now   func() time.Time

	client    mqtt.Client
	queue     chan message
	connected atomic.Bool
	wg        sync.WaitGroup
	stopOnce  sync.Once

	overloads prometheus.Counter
	queued    prometheus.GaugeFunc
	connects  prometheus.Counter
}

type message struct {
	topic    string
	payload  []byte
	received time.Time
}

// New returns an Ingester for the feeds; Start connects it.
func New(opts Options, feeds []*feed.Feed, sink Sink, log *slog.Logger, reg prometheus.Registerer) *Ingester {
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.MaxReconnectInterval == 0 {
		opts.MaxReconnectInterval = 30 * time.Second
	}
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	if opts.Queue == 0 {
		opts.Queue = 65536
	}
	in := &Ingester{
		opts:  opts,
		log:   log.With("component", "ingest"),
		feeds: feeds,
		sink:  sink,
		now:   time.Now,
		queue: make(chan message, opts.Queue),
		overloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_ingest_overload_rejects_total", Help: "Messages rejected because the decoding queue was full.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_mqtt_connects_total", Help: "Successful connections to the MQTT broker.",
		}),
	}
	in.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cityscreen_ingest_queued_messages", Help: "Messages waiting for a decoding worker.",
	}, func() float64 { return float64(len(in.queue)) })
	if reg != nil {
		reg.MustRegister(in.overloads, in.queued, in.connects, newFeedCollector(feeds),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityscreen_mqtt_connected", Help: "1 while connected to the MQTT broker.",
			}, func() float64 {
				if in.connected.Load() {
					return 1
				}
				return 0
			}))
	}
	return in
}

// Feeds returns the feeds this ingester serves.
func (in *Ingester) Feeds() []*feed.Feed { return in.feeds }

// Feed returns the feed with the ID, or nil.
func (in *Ingester) Feed(id string) *feed.Feed {
	for _, f := range in.feeds {
		if f.ID() == id {
			return f
		}
	}
	return nil
}

// Start begins connecting (retrying forever in the background) and starts
// the workers. It returns at once; Connected tells when the broker is there.
func (in *Ingester) Start() {
	for i := 0; i < in.opts.Workers; i++ {
		in.wg.Add(1)
		go in.work()
	}
	o := mqtt.NewClientOptions().
		AddBroker(in.opts.URL).
		SetClientID(in.opts.ClientID).
		SetUsername(in.opts.Username).
		SetPassword(in.opts.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectTimeout(in.opts.ConnectTimeout).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(in.opts.MaxReconnectInterval).
		SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(in.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			in.connected.Store(false)
			in.log.Warn("lost the MQTT broker; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
			in.log.Info("reconnecting to the MQTT broker", "broker", in.opts.URL)
		})
	in.client = mqtt.NewClient(o)
	in.client.Connect() // retries in the background until Stop
}

// onConnect subscribes to every feed's filter; with a clean session the
// broker has forgotten them. Paho runs it on a goroutine of its own.
func (in *Ingester) onConnect(c mqtt.Client) {
	filters := map[string]byte{}
	for _, f := range in.feeds {
		filters[f.Spec().Filter()] = 1
	}
	in.connects.Inc()
	if len(filters) == 0 {
		in.connected.Store(true)
		return
	}
	tok := c.SubscribeMultiple(filters, in.onMessage)
	if !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		in.log.Error("subscribing failed: not ready until the next connection", "filters", len(filters), "err", tok.Error())
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code == 0x80 {
				in.log.Error("the broker refused a subscription", "topic", filter)
			}
		}
	}
	in.connected.Store(true)
	in.log.Info("connected to the MQTT broker", "broker", in.opts.URL, "filters", len(filters))
}

// onMessage runs on paho's goroutine: it only stamps and queues.
func (in *Ingester) onMessage(_ mqtt.Client, m mqtt.Message) {
	msg := message{topic: m.Topic(), payload: m.Payload(), received: in.now()}
	select {
	case in.queue <- msg:
	default:
		in.overloads.Inc()
		reason := fmt.Sprintf("overload: %d messages already waiting to be decoded", cap(in.queue))
		for _, f := range in.feeds {
			if f.Matches(msg.topic) {
				f.Reject(msg.topic, msg.payload, msg.received, reason)
			}
		}
	}
}

func (in *Ingester) work() {
	defer in.wg.Done()
	for msg := range in.queue {
		in.handle(msg)
	}
}

// handle gives a message to every feed whose topic matches it.
func (in *Ingester) handle(msg message) {
	for _, f := range in.feeds {
		if !f.Matches(msg.topic) {
			continue
		}
		points, err := f.Handle(msg.topic, msg.payload, msg.received)
		if err != nil {
			in.log.Debug("rejected", "feed", f.ID(), "topic", msg.topic, "err", err)
			continue
		}
		in.sink.Accept(f.ID(), points)
	}
}

// Connected reports whether the broker connection is up and subscribed.
func (in *Ingester) Connected() bool { return in.connected.Load() }

// ErrNotConnected is the readiness reason while the broker is away.
var ErrNotConnected = errors.New("not connected to the MQTT broker")

// Ready reports nil while connected.
func (in *Ingester) Ready() error {
	if !in.connected.Load() {
		return ErrNotConnected
	}
	return nil
}

// Stop disconnects, then lets the workers finish what was queued, or stops
// waiting when ctx ends. It may be called more than once.
func (in *Ingester) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() {
		if in.client != nil {
			in.client.Disconnect(250)
		}
		in.connected.Store(false)
		close(in.queue)
	})
	done := make(chan struct{})
	go func() { in.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
