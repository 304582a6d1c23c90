package ingest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// fakeBroker stands in for a broker to the clients it makes (pass its
// NewClient as Options.NewClient): it keeps each client's subscriptions,
// hands what a test publishes to the connected clients subscribed to it,
// as paho would, and records what each client did, in order. It lets
// ingest's Start, SetFeeds and Stop be tested without a broker; the
// tests against Mosquitto check the same against the real thing.
type fakeBroker struct {
	mu      sync.Mutex
	clients []*fakeClient
	events  []string // "connect ID", "subscribe ID FILTER", "unsubscribe ID FILTER", "ack N", "disconnect ID"
	next    uint16
}

func (b *fakeBroker) NewClient(o *mqtt.ClientOptions) mqtt.Client {
	c := &fakeClient{b: b, o: o, subs: map[string]bool{}}
	b.mu.Lock()
	b.clients = append(b.clients, c)
	b.mu.Unlock()
	return c
}

func (b *fakeBroker) record(format string, args ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, strings.Join(append([]string{format}, args...), " "))
}

// Events returns what the clients did, in order.
func (b *fakeBroker) Events() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// has reports whether an event was recorded.
func (b *fakeBroker) has(event string) bool { return slices.Contains(b.Events(), event) }

// subscriptions returns the filters of the connected client with the ID.
func (b *fakeBroker) subscriptions(id string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.clients {
		c.mu.Lock()
		if c.connected && c.o.ClientID == id {
			out = append(out, slices.Collect(maps.Keys(c.subs))...)
		}
		c.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// message is a QoS 1 message with the next message ID, whose
// acknowledgement the broker records.
func (b *fakeBroker) message(topic, payload string) *delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	return &delivery{b: b, topic: topic, payload: []byte(payload), id: b.next}
}

// publish delivers a message to every connected client subscribed to its
// topic.
func (b *fakeBroker) publish(topic, payload string) {
	m := b.message(topic, payload)
	b.mu.Lock()
	clients := slices.Clone(b.clients)
	b.mu.Unlock()
	for _, c := range clients {
		c.mu.Lock()
		take := c.connected && slices.ContainsFunc(slices.Collect(maps.Keys(c.subs)), func(f string) bool { return feed.MatchFilter(unshare(f), topic) })
		c.mu.Unlock()
		if take {
			c.o.DefaultPublishHandler(c, m)
		}
	}
}

// acks counts the acknowledgements.
func (b *fakeBroker) acks() int {
	n := 0
	for _, e := range b.Events() {
		if strings.HasPrefix(e, "ack ") {
			n++
		}
	}
	return n
}

// unshare drops a shared subscription's $share/GROUP/ prefix.
func unshare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}

type fakeClient struct {
	b         *fakeBroker
	o         *mqtt.ClientOptions
	mu        sync.Mutex
	connected bool
	subs      map[string]bool
	handlers  sync.WaitGroup // OnConnect handlers running
}

func (c *fakeClient) IsConnected() bool      { c.mu.Lock(); defer c.mu.Unlock(); return c.connected }
func (c *fakeClient) IsConnectionOpen() bool { return c.IsConnected() }

// Connect connects at once and, as paho does, runs the OnConnect handler
// on a goroutine of its own.
func (c *fakeClient) Connect() mqtt.Token {
	c.mu.Lock()
	c.connected = true
	if c.o.CleanSession {
		clear(c.subs)
	}
	c.mu.Unlock()
	c.b.record("connect", c.o.ClientID)
	if c.o.OnConnect != nil {
		c.handlers.Go(func() { c.o.OnConnect(c) })
	}
	return done(nil)
}

func (c *fakeClient) Disconnect(uint) {
	c.handlers.Wait()
	c.mu.Lock()
	was := c.connected
	c.connected = false
	c.mu.Unlock()
	if was {
		c.b.record("disconnect", c.o.ClientID)
	}
}

func (c *fakeClient) Publish(string, byte, bool, any) mqtt.Token { return done(nil) }

func (c *fakeClient) Subscribe(topic string, qos byte, _ mqtt.MessageHandler) mqtt.Token {
	return c.SubscribeMultiple(map[string]byte{topic: qos}, nil)
}

func (c *fakeClient) SubscribeMultiple(filters map[string]byte, _ mqtt.MessageHandler) mqtt.Token {
	keys := slices.Sorted(maps.Keys(filters))
	c.mu.Lock()
	for _, f := range keys {
		c.subs[f] = true
	}
	c.mu.Unlock()
	for _, f := range keys {
		c.b.record("subscribe", c.o.ClientID, f)
	}
	return done(nil)
}

func (c *fakeClient) Unsubscribe(topics ...string) mqtt.Token {
	c.mu.Lock()
	for _, f := range topics {
		delete(c.subs, f)
	}
	c.mu.Unlock()
	for _, f := range slices.Sorted(slices.Values(topics)) {
		c.b.record("unsubscribe", c.o.ClientID, f)
	}
	return done(nil)
}

func (c *fakeClient) AddRoute(string, mqtt.MessageHandler)    {}
func (c *fakeClient) OptionsReader() mqtt.ClientOptionsReader { return mqtt.NewOptionsReader(c.o) }

// doneToken is a token already complete.
type doneToken struct{ err error }

func done(err error) mqtt.Token { return doneToken{err} }

func (t doneToken) Wait() bool                     { return true }
func (t doneToken) WaitTimeout(time.Duration) bool { return true }
func (t doneToken) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
func (t doneToken) Error() error { return t.err }

type delivery struct {
	b       *fakeBroker
	topic   string
	payload []byte
	id      uint16
	once    sync.Once
}

func (m *delivery) Duplicate() bool   { return false }
func (m *delivery) Qos() byte         { return 1 }
func (m *delivery) Retained() bool    { return false }
func (m *delivery) Topic() string     { return m.topic }
func (m *delivery) MessageID() uint16 { return m.id }
func (m *delivery) Payload() []byte   { return m.payload }
func (m *delivery) Ack() {
	m.once.Do(func() { m.b.record("ack", itoa(m.id)) })
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
