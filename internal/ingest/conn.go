package ingest

import (
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// conn is one connection to the broker.
type conn struct {
	id        string
	lane      *lane
	client    mqtt.Client
	connected atomic.Bool
	// subscribed is closed once the connection has first subscribed its
	// lane's filters (or had none to subscribe).
	subscribed     chan struct{}
	subscribedOnce sync.Once
	closed         atomic.Bool // by close: for good
	closeOnce      sync.Once
	refusedMu      sync.Mutex
	refused        map[string]bool // filters the broker refused to subscribe
	// wire is the network connection paho opened last: a message is
	// acknowledged on the one it arrived on (paho has finished handing out
	// the messages of a lost connection before it opens the next).
	wire atomic.Pointer[bufferedConn]
	// receive is the connection's message handler.
	receive mqtt.MessageHandler
	store   sessionStore // paho's record of the session
}

func newConn(id string, l *lane) *conn {
	return &conn{id: id, lane: l, subscribed: make(chan struct{})}
}

// connect starts one connection, retrying in the background until Stop.
func (in *Ingester) connect(c *conn) {
	o := in.keepConnecting(in.clientOptions(c)).
		SetCleanSession(in.opts.CleanSession).
		SetOnConnectHandler(func(client mqtt.Client) { in.onConnect(c, client) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.connected.Store(false)
			in.log.Warn("lost the MQTT broker; reconnecting", "client_id", c.id, "err", err)
		}).
		SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
			in.log.Info("reconnecting to the MQTT broker", "broker", redact(in.opts.URL), "client_id", c.id)
		})
	c.client = in.opts.NewClient(o)
	c.client.Connect() // retries in the background until Stop
}

// keepConnecting makes a client try its first connection until it is
// made and connect again whenever it is lost, backing off up to
// MaxReconnectInterval: the ingester's lasting connections.
func (in *Ingester) keepConnecting(o *mqtt.ClientOptions) *mqtt.ClientOptions {
	return o.SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(in.opts.MaxReconnectInterval)
}

// brokerOptions are what every client of the ingester has in common: the
// broker, the credentials and TLS, the connection timeout.
func (in *Ingester) brokerOptions(clientID string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(in.opts.URL).
		SetClientID(clientID).
		SetUsername(in.opts.Username).
		SetPassword(in.opts.Password).
		SetTLSConfig(in.opts.TLS).
		SetConnectTimeout(in.opts.ConnectTimeout)
}

// clientOptions are what every connection of c's client ID has in common.
func (in *Ingester) clientOptions(c *conn) *mqtt.ClientOptions {
	open := func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		wire, err := openConn(uri, o)
		if err != nil {
			return nil, err
		}
		c.wire.Store(wire)
		return wire, nil
	}
	c.receive = func(_ mqtt.Client, m mqtt.Message) { in.receive(c.lane, c.wire.Load(), m) }
	c.store = newSessionStore()
	return in.brokerOptions(c.id).
		SetCustomOpenConnectionFn(open).
		SetStore(c.store).
		SetAutoAckDisabled(true).
		SetOrderMatters(true). // receive only queues: it never blocks paho
		SetKeepAlive(30 * time.Second).
		// A persistent session's queued messages can arrive before the
		// subscriptions are made again; without a default handler paho
		// would leave them unacknowledged, holding the inflight window.
		SetDefaultPublishHandler(c.receive)
}

// onConnect subscribes to every feed's filter (the broker may have lost the
// session). Paho runs it on a goroutine of its own.
func (in *Ingester) onConnect(c *conn, client mqtt.Client) {
	filters := in.filtersOf(c.lane.Feeds())
	in.connects.Inc()
	if len(filters) == 0 {
		c.up()
		return
	}
	// No handler per subscription: every message goes to the default
	// handler, and paho does not match each topic against each filter.
	tok := client.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		in.log.Error("subscribing failed: not ready until the next connection", "client_id", c.id, "filters", len(filters), "err", tok.Error())
		return
	}
	c.noteRefused(tok, false, in.log)
	c.up()
	in.log.Info("connected to the MQTT broker", "broker", redact(in.opts.URL), "client_id", c.id, "filters", len(filters))
}

// up records that the connection is up with its lane's filters
// subscribed, the first time as well (subscribed).
func (c *conn) up() {
	c.connected.Store(true)
	c.subscribedOnce.Do(func() { close(c.subscribed) })
}

// close disconnects the connection, after what it has to send. It may be
// called more than once and at once from several goroutines (stopping, and
// ending a lane or an earlier layout's session), but disconnects only once:
// paho's Disconnect, called twice while the client waits to reconnect,
// leaves it "disconnecting" for good, and a third call waits forever.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		if c.client != nil {
			c.client.Disconnect(250)
		}
		c.connected.Store(false)
		c.closed.Store(true)
	})
}

// noteRefused records which filters of a SUBACK the broker refused
// (return code 0x80: an ACL, say), adding to those recorded, or replacing
// them for a whole new subscription.
func (c *conn) noteRefused(tok mqtt.Token, add bool, log *slog.Logger) {
	st, ok := tok.(*mqtt.SubscribeToken)
	if !ok {
		return
	}
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	if !add || c.refused == nil {
		c.refused = map[string]bool{}
	}
	for filter, code := range st.Result() {
		if code == 0x80 {
			log.Error("the broker refused a subscription", "topic", filter, "client_id", c.id)
		}
		c.refused[filter] = code == 0x80
	}
}

// isRefused reports whether the broker refused the filter at the last
// subscription.
func (c *conn) isRefused(filter string) bool {
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	return c.refused[filter]
}
