package ingest

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Sink takes what ingest decoded. Both methods must not block for long and
// must call done exactly once: with nil once what they were given is
// durable (only then is the message acknowledged to the broker), or with
// the error that kept it from being so (then it is not acknowledged, and
// the broker delivers it again on the next connection).
type Sink interface {
	// Store takes the points a feed made of one message, and the same
	// points as line protocol.
	Store(feedID string, points []feed.Point, line []byte, done func(error))
	// Quarantine keeps a message a feed rejected, with the reason.
	Quarantine(feedID, topic string, payload []byte, received time.Time, reason string, done func(error))
}

// Options configure an Ingester. URL is required.
type Options struct {
	URL      string
	ClientID string
	Username string
	Password string // never logged
	// TLS configures ssl://, tls://, mqtts:// and wss:// connections; nil
	// means the defaults (the system's CAs).
	TLS *tls.Config
	// Privacy masks or drops personal data in every message, by topic,
	// before anything decodes or keeps it; nil means no rules.
	Privacy *feed.Privacy
	// ConnectTimeout bounds one connection attempt; 0 means 10s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the reconnect backoff; 0 means 30s.
	MaxReconnectInterval time.Duration
	// Workers decode in parallel; 0 means one per CPU.
	Workers int
	// Queue is how many messages may wait for a worker; 0 means 65536.
	Queue int
	// Connections take the stream in parallel, each with its own window of
	// unacknowledged messages at the broker; 0 means 1. The first has
	// ClientID, the others ClientID-2, ClientID-3 and so on. More than one
	// needs ShareGroup, or each would get every message.
	Connections int
	// ShareGroup, when set, subscribes every filter as the MQTT shared
	// subscription $share/ShareGroup/filter: the broker gives each message
	// to one member of the group (these connections and those of any other
	// instance in the group).
	ShareGroup string
	// CleanSession asks for a session that ends with the connection: no
	// messages are kept for it while away. False means a persistent
	// session under the client ID.
	CleanSession bool
	// Mirror decodes a copy of a stream that another path counts and
	// keeps: feeds' counters are not touched, and rejected messages are
	// neither kept nor handed to the sink's Quarantine.
	Mirror bool
	// Path names this ingester in its metrics' "path" label; empty means
	// "store".
	Path string
	// PerFeed gives every topic filter connections of its own (Connections
	// of them), named ClientID.ID after the smallest ID of the feeds with
	// that filter (ClientID.ID.2 and so on for the others): each feed then
	// has its own window of unacknowledged messages and its own queue at
	// the broker, so that a burst or a stall of one feed cannot make the
	// broker drop another's readings. False puts every feed on the same
	// connections (ClientID, ClientID-2 and so on).
	PerFeed bool
	// WatchDrops follows the broker's count of the messages it dropped
	// because of its limits (DropTopics) on one more connection,
	// ClientID-stats: it is logged when it rises and kept as a metric. Not
	// with Mirror.
	WatchDrops bool
	// NewClient makes each of the ingester's MQTT clients from its
	// options; nil means paho's mqtt.NewClient. Tests give a fake.
	NewClient func(*mqtt.ClientOptions) mqtt.Client
}

// Ingester owns the MQTT connections and the decoding workers.
type Ingester struct {
	opts    Options
	log     *slog.Logger
	feeds   atomic.Pointer[[]*feed.Feed] // replaced whole by SetFeeds
	privacy atomic.Pointer[feed.Privacy]
	sink    Sink
	now     func() time.Time

	lanesMu sync.Mutex // serialises changes of lanes (SetFeeds, Start, Stop)
	lanes   atomic.Pointer[[]*lane]
	started bool // under lanesMu
	// retired, under lanesMu, are connections being ended (the other
	// layout's sessions, lanes SetFeeds replaced), for Stop to close.
	retired   []*conn
	queue     chan message
	workers   sync.WaitGroup // decoding workers
	inflight  sync.WaitGroup // messages handed to the sink and not yet settled
	startOnce sync.Once
	stopOnce  sync.Once
	stopped   chan struct{} // closed once everything taken is settled and acknowledged
	quit      chan struct{} // closed when Stop begins
	mu        sync.RWMutex  // guards stopping against sends on the closed queue
	stopping  bool

	overloads prometheus.Counter
	unacked   prometheus.Counter
	connects  prometheus.Counter
	decode    prometheus.Observer
	ack       prometheus.Observer
	drops     *dropWatch // nil unless Options.WatchDrops
}

type message struct {
	m        mqtt.Message // to acknowledge
	lane     *lane        // whose feeds take it
	wire     *bufferedConn
	topic    string
	payload  []byte
	received time.Time
}

// acknowledge tells the broker the message is kept. A QoS 1 message's
// PUBACK is written straight to the connection it came on, beside paho's
// own writes (each of which is one whole packet): paho's way takes three
// goroutine hops and a store update per message. A PUBACK for a connection
// since lost is not sent (the broker delivers the message again, as paho
// would). Anything else is acknowledged through paho.
func (m message) acknowledge() {
	if m.wire != nil && m.m.Qos() == 1 {
		m.wire.puback(m.m.MessageID())
		return
	}
	m.m.Ack()
}

// The defaults of Options, which the configuration's mqtt and ingest
// settings share.
const (
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	DefaultQueue                = 65536
	DefaultConnections          = 1
)

// New returns an Ingester for the feeds; Start connects it.
func New(opts Options, feeds []*feed.Feed, sink Sink, log *slog.Logger, reg prometheus.Registerer) *Ingester {
	opts.ConnectTimeout = cmp.Or(opts.ConnectTimeout, DefaultConnectTimeout)
	opts.MaxReconnectInterval = cmp.Or(opts.MaxReconnectInterval, DefaultMaxReconnectInterval)
	opts.Workers = cmp.Or(opts.Workers, runtime.NumCPU())
	opts.Queue = cmp.Or(opts.Queue, DefaultQueue)
	opts.Connections = cmp.Or(opts.Connections, DefaultConnections)
	opts.Path = cmp.Or(opts.Path, "store")
	if opts.NewClient == nil {
		opts.NewClient = mqtt.NewClient
	}
	in := &Ingester{
		opts:    opts,
		log:     log.With("component", "ingest"),
		sink:    sink,
		now:     time.Now,
		queue:   make(chan message, opts.Queue),
		stopped: make(chan struct{}),
		quit:    make(chan struct{}),
	}
	in.feeds.Store(&feeds)
	in.privacy.Store(opts.Privacy)
	var lanes []*lane
	for _, g := range layout(feeds, opts.PerFeed) {
		lanes = append(lanes, in.newLane(g))
	}
	in.lanes.Store(&lanes)
	if opts.WatchDrops && !opts.Mirror {
		in.drops = newDropWatch(in)
	}
	in.newMetrics(reg)
	return in
}

// Privacy returns the personal-data rules applied to every message.
func (in *Ingester) Privacy() *feed.Privacy { return in.privacy.Load() }

// SetPrivacy replaces the personal-data rules. Set them before Start: a
// message is never decoded under no rules when rules are configured.
func (in *Ingester) SetPrivacy(p *feed.Privacy) { in.privacy.Store(p) }

// Feeds returns the feeds this ingester serves.
func (in *Ingester) Feeds() []*feed.Feed { return *in.feeds.Load() }

// Feed returns the feed with the ID, or nil.
func (in *Ingester) Feed(id string) *feed.Feed {
	for _, f := range in.Feeds() {
		if f.ID() == id {
			return f
		}
	}
	return nil
}

// Start begins connecting (retrying forever in the background) and starts
// the workers. It returns at once; Connected tells when the broker is there.
//
// The session is persistent (clean session off, the configured client ID)
// and acknowledgements are manual: a message is acknowledged only once the
// sink has made it durable, so that what the broker delivered and
// cityscreen did not keep is delivered again after a crash or reconnect.
func (in *Ingester) Start() { in.startOnce.Do(in.start) }

func (in *Ingester) start() {
	for i := 0; i < in.opts.Workers; i++ {
		in.workers.Add(1)
		go in.work()
	}
	in.lanesMu.Lock()
	defer in.lanesMu.Unlock()
	in.started = true
	for _, l := range in.lanesNow() {
		for _, c := range l.conns {
			in.connect(c)
		}
	}
	if !in.opts.CleanSession {
		go in.retireOther(in.others())
	}
	if in.drops != nil {
		in.drops.start()
	}
}

// receive runs on paho's goroutine for a message that arrived on wire: it
// only stamps and queues.
func (in *Ingester) receive(l *lane, wire *bufferedConn, m mqtt.Message) {
	msg := message{m: m, lane: l, wire: wire, topic: m.Topic(), payload: m.Payload(), received: in.now()}
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.stopping {
		return // not acknowledged: the broker delivers it again next time
	}
	in.inflight.Add(1) // before the send: a worker may settle it at once
	l.pending.Add(1)
	select {
	case in.queue <- msg:
	default:
		in.overloads.Inc()
		reason := fmt.Sprintf("overload: %d messages already waiting to be decoded", cap(in.queue))
		var buf [4]*feed.Feed
		payload := in.Privacy().Scrub(msg.topic, msg.payload)
		in.settle(msg, matching(buf[:0], msg.lane.Feeds(), msg.topic), func(f *feed.Feed, done func(error)) {
			f.Reject(msg.topic, payload, msg.received, reason)
			in.sink.Quarantine(f.ID(), msg.topic, payload, msg.received, reason, done)
		})
	}
}

func (in *Ingester) work() {
	defer in.workers.Done()
	var buf [4]*feed.Feed
	for msg := range in.queue {
		// Personal data is masked or dropped, by topic, before any feed
		// decodes or keeps the message.
		payload := in.Privacy().Scrub(msg.topic, msg.payload)
		in.settle(msg, matching(buf[:0], msg.lane.Feeds(), msg.topic), func(f *feed.Feed, done func(error)) {
			start := time.Now()
			var points []feed.Point
			var line []byte
			var err error
			if in.opts.Mirror {
				points, line, err = f.DecodeLine(msg.topic, payload, msg.received)
			} else {
				points, line, err = f.HandleLine(msg.topic, payload, msg.received)
			}
			in.decode.Observe(time.Since(start).Seconds())
			if err != nil && in.opts.Mirror {
				done(nil) // the path that stores the stream keeps it
				return
			}
			if err != nil {
				in.log.Debug("rejected", "feed", f.ID(), "topic", msg.topic, "err", err)
				in.sink.Quarantine(f.ID(), msg.topic, payload, msg.received, err.Error(), done)
				return
			}
			in.sink.Store(f.ID(), points, line, done)
		})
	}
}

// matching appends the feeds whose filter matches the topic to dst.
func matching(dst, feeds []*feed.Feed, topic string) []*feed.Feed {
	for _, f := range feeds {
		if f.Matches(topic) {
			dst = append(dst, f)
		}
	}
	return dst
}

// settle hands a message to each of its feeds through give, and
// acknowledges it once every feed's part is durable. A message of one feed,
// the usual case, takes one allocation here.
func (in *Ingester) settle(msg message, feeds []*feed.Feed, give func(*feed.Feed, func(error))) {
	switch len(feeds) {
	case 0:
		in.finish(msg, false)
		return
	case 1:
		f := feeds[0]
		give(f, func(err error) {
			if err != nil {
				in.notDurable(f, msg, err)
			}
			in.finish(msg, err != nil)
		})
		return
	}
	left := atomic.Int32{}
	left.Store(int32(len(feeds)))
	failed := atomic.Bool{}
	for _, f := range feeds {
		give(f, func(err error) {
			if err != nil {
				failed.Store(true)
				in.notDurable(f, msg, err)
			}
			if left.Add(-1) == 0 {
				in.finish(msg, failed.Load())
			}
		})
	}
}

// finish acknowledges a settled message, unless a feed's part of it could
// not be made durable (the broker then delivers it again).
func (in *Ingester) finish(msg message, failed bool) {
	if failed {
		in.unacked.Inc()
		msg.lane.failed.Add(1)
	} else {
		msg.acknowledge()
		in.ack.Observe(in.now().Sub(msg.received).Seconds())
	}
	msg.lane.pending.Add(-1)
	in.inflight.Done()
}

func (in *Ingester) notDurable(f *feed.Feed, msg message, err error) {
	in.log.Error("a message could not be made durable: not acknowledged", "feed", f.ID(), "topic", msg.topic, "err", err)
}

// filtersOf returns the filters to subscribe for the feeds, as shared
// subscriptions when there is a group.
func (in *Ingester) filtersOf(feeds []*feed.Feed) map[string]byte {
	filters := map[string]byte{}
	for _, f := range feeds {
		filters[in.filterOf(f)] = 1
	}
	return filters
}

// filterOf is the filter the feed is subscribed with: a shared
// subscription when there is a group.
func (in *Ingester) filterOf(f *feed.Feed) string {
	if in.opts.ShareGroup != "" {
		return "$share/" + in.opts.ShareGroup + "/" + f.Filter()
	}
	return f.Filter()
}

// SetFeeds replaces the feeds: messages from now on go to the new set, new
// topics are subscribed and topics no feed uses any more unsubscribed.
// With PerFeed a new topic filter gets connections of its own, and the
// connections of a filter no feed uses any more are unsubscribed, closed
// and their sessions ended. When the smallest ID among a filter's feeds
// changes, so does the name of its connections: the new ones subscribe
// first, then the old ones are unsubscribed and, a moment later, closed
// and their sessions ended (endLane).
//
// A feed whose filter needs a connection of its own is live when SetFeeds
// returns, as one whose filter is added to an open connection is: SetFeeds
// waits, up to the connect timeout, until the new connections have
// subscribed, so that a reading published once a feed is registered is
// taken. When the broker cannot be reached meanwhile, they keep trying in
// the background.
func (in *Ingester) SetFeeds(feeds []*feed.Feed) {
	fresh := in.setFeeds(feeds)
	if len(fresh) == 0 {
		return
	}
	deadline := time.NewTimer(in.opts.ConnectTimeout)
	defer deadline.Stop()
	for _, c := range fresh {
		select {
		case <-c.subscribed:
		case <-in.quit:
			return
		case <-deadline.C:
			in.log.Warn("a new feed connection has not subscribed yet; it keeps trying", "client_id", c.id)
			return
		}
	}
}

// setFeeds changes the lanes for feeds, and returns the connections it
// started.
func (in *Ingester) setFeeds(feeds []*feed.Feed) (fresh []*conn) {
	in.lanesMu.Lock()
	defer in.lanesMu.Unlock()
	in.feeds.Store(&feeds)
	old := map[string]*lane{}
	for _, l := range in.lanesNow() {
		old[l.name] = l
	}
	var next []*lane
	added, subscribed, unsubscribed := 0, 0, 0
	takenOver := map[string]*lane{} // filter: the new lane that takes it over
	for _, g := range layout(feeds, in.opts.PerFeed) {
		l := old[g.name]
		if l == nil {
			l = in.newLane(g)
			if in.started && !in.isStopping() {
				for _, c := range l.conns {
					in.connect(c)
				}
				fresh = append(fresh, l.conns...)
			}
			added++
			takenOver[g.key] = l
			next = append(next, l)
			continue
		}
		delete(old, g.name)
		add, drop := diff(in.filtersOf(l.Feeds()), in.filtersOf(g.feeds))
		l.key = g.key
		l.feeds.Store(&g.feeds)
		in.resubscribe(l, add, drop)
		subscribed, unsubscribed = subscribed+len(add), unsubscribed+len(drop)
		next = append(next, l)
	}
	in.lanes.Store(&next)
	for _, l := range old {
		filters := slices.Collect(maps.Keys(in.filtersOf(l.Feeds())))
		after := takenOver[l.key]
		if after != nil {
			l.feeds.Store(after.feeds.Load()) // until it is unsubscribed
		} else {
			none := []*feed.Feed{}
			l.feeds.Store(&none) // what still arrives is acknowledged and not taken
			unsubscribed += len(filters)
		}
		in.addRetired(l.conns...)
		go in.endLane(l, filters, after)
	}
	in.log.Info("feeds changed", "feeds", len(feeds), "subscribed", subscribed, "unsubscribed", unsubscribed,
		"lanes_added", added, "lanes_closed", len(old))
	return fresh
}

// diff returns the filters in now and not in old, and those in old and not
// in now.
func diff(old, now map[string]byte) (add map[string]byte, drop []string) {
	add = map[string]byte{}
	for f := range now {
		if _, ok := old[f]; !ok {
			add[f] = 1
		}
	}
	for f := range old {
		if _, ok := now[f]; !ok {
			drop = append(drop, f)
		}
	}
	return add, drop
}

// resubscribe subscribes a lane's open connections to add and unsubscribes
// them from drop; one that is not open subscribes its lane's filters when
// it connects.
func (in *Ingester) resubscribe(l *lane, add map[string]byte, drop []string) {
	for _, c := range l.conns {
		if c.client == nil || !c.client.IsConnectionOpen() {
			continue
		}
		if len(add) > 0 {
			if tok := c.client.SubscribeMultiple(add, nil); !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
				in.log.Error("subscribing to new feeds' topics failed; retried at the next connection", "client_id", c.id, "err", tok.Error())
			} else {
				c.noteRefused(tok, true, in.log)
			}
		}
		if len(drop) > 0 {
			if tok := c.client.Unsubscribe(drop...); !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
				in.log.Error("unsubscribing from retired feeds' topics failed", "client_id", c.id, "err", tok.Error())
			}
		}
	}
}

// addRetired adds connections to those being ended, leaving out those
// already closed. The caller holds lanesMu.
func (in *Ingester) addRetired(cs ...*conn) {
	in.retired = slices.DeleteFunc(in.retired, func(c *conn) bool { return c.closed.Load() })
	in.retired = append(in.retired, cs...)
}

// Subscription says how a feed's readings reach cityscreen: the client IDs
// of the connections that take them, and State: "subscribed", "refused"
// (the broker refused the feed's filter at the last subscription) or
// "down" (a connection is not up).
type Subscription struct {
	ClientIDs []string `json:"client_ids"`
	State     string   `json:"state"`
}

// Subscription returns the feed's, and false for a feed it does not have.
func (in *Ingester) Subscription(id string) (Subscription, bool) {
	for _, l := range in.lanesNow() {
		for _, f := range l.Feeds() {
			if f.ID() != id {
				continue
			}
			sub := Subscription{State: "subscribed"}
			filter := in.filterOf(f)
			for _, c := range l.conns {
				sub.ClientIDs = append(sub.ClientIDs, c.id)
				switch {
				case !c.connected.Load():
					sub.State = "down"
				case c.isRefused(filter) && sub.State != "down":
					sub.State = "refused"
				}
			}
			return sub, true
		}
	}
	return Subscription{}, false
}

// conns returns every lane's connections.
func (in *Ingester) conns() []*conn {
	var all []*conn
	for _, l := range in.lanesNow() {
		all = append(all, l.conns...)
	}
	return all
}

// up counts the connections that are up and subscribed, and all of them.
func (in *Ingester) up() (up, all int) {
	for _, c := range in.conns() {
		if c.connected.Load() {
			up++
		}
		all++
	}
	return up, all
}

// Connected reports whether every connection is up and subscribed.
func (in *Ingester) Connected() bool {
	up, all := in.up()
	return up == all
}

// ErrNotConnected is the readiness reason while the broker is away.
var ErrNotConnected = errors.New("not connected to the MQTT broker")

// Ready reports nil while connected.
// With PerFeed and no feeds there is no connection to wait for.
func (in *Ingester) Ready() error {
	switch up, all := in.up(); {
	case up == 0 && all > 0:
		return ErrNotConnected
	case up < all:
		var down []string
		for _, c := range in.conns() {
			if !c.connected.Load() {
				down = append(down, c.id)
			}
		}
		return fmt.Errorf("%w: %d of %d connections are up; down: %s", ErrNotConnected, up, all, strings.Join(down, ", "))
	}
	return nil
}

// Stop takes no more messages, lets the workers finish what was queued,
// waits until the sink has made it durable, acknowledges it, and then
// disconnects. It stops waiting when ctx ends (what is unacknowledged is
// delivered again next time). It may be called more than once; the sink
// must stay open until it returns.
func (in *Ingester) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() {
		in.mu.Lock()
		in.stopping = true
		close(in.quit)
		close(in.queue)
		in.mu.Unlock()
		go func() {
			defer close(in.stopped)
			in.workers.Wait()
			for msg := range in.queue { // left by workers that never ran: delivered again next time
				msg.lane.pending.Add(-1)
				in.inflight.Done()
			}
			in.inflight.Wait()
		}()
	})
	var err error
	select {
	case <-in.stopped:
	case <-ctx.Done():
		err = ctx.Err()
	}
	in.lanesMu.Lock()
	defer in.lanesMu.Unlock()
	for _, c := range append(in.conns(), in.retired...) {
		c.close() // sends the acknowledgements still queued first
	}
	if in.drops != nil {
		in.drops.stop()
	}
	return err
}

func (in *Ingester) isStopping() bool {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.stopping
}

// redact hides the password of a URL that carries one, for logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}
