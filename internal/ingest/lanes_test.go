package ingest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// valueFeed is a feed of {"v": number} readings on prefix/{x}.
func valueFeed(t *testing.T, id, prefix string) *feed.Feed {
	t.Helper()
	f, err := feed.New(feed.Spec{ID: id, Topic: prefix + "/{x}", Measurement: "m", Fields: map[string]feed.FieldSpec{"v": {Type: "float"}}}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// holding is a sink that keeps the points of one feed from being durable
// until released, and makes the others' durable at once.
type holding struct {
	collect
	feed string
	mu   sync.Mutex
	held []func(error)
}

func (h *holding) Store(id string, pts []feed.Point, line []byte, done func(error)) {
	if id != h.feed {
		h.collect.Store(id, pts, line, done)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.collect.Store(id, pts, line, done) // released
		return
	}
	h.held = append(h.held, done)
}

func (h *holding) release() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, done := range held {
		done(nil)
	}
}

func (h *holding) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// TestFeedsOnConnectionsOfTheirOwn: with PerFeed every topic filter has
// its own connection, named after its feed; a message goes to the feeds of
// the connection it came on; and a feed whose readings cannot be made
// durable fills only its own window at the broker (Mosquitto's shipped
// limits): another feed's readings keep coming.
func TestFeedsOnConnectionsOfTheirOwn(t *testing.T) {
	url := brokerURL(t)
	now := time.Now().UnixNano()
	slowPrefix, fastPrefix := fmt.Sprintf("lanes-slow/%d", now), fmt.Sprintf("lanes-fast/%d", now)
	slow, fast := valueFeed(t, "slow", slowPrefix), valueFeed(t, "fast", fastPrefix)
	twin := valueFeed(t, "a-twin", slowPrefix)       // the same filter as slow
	wide := valueFeed(t, "wide", "lanes-fast/{run}") // lanes-fast/+/+: overlaps fast
	sink := &holding{feed: "slow", held: []func(error){}}
	clientID := fmt.Sprintf("lanes-%d", now)
	in := New(Options{URL: url, ClientID: clientID, PerFeed: true}, []*feed.Feed{slow, fast, twin, wide}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	defer func() {
		sink.release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	}()
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	var ids []string
	for _, c := range in.conns() {
		ids = append(ids, c.id)
	}
	if want := fmt.Sprint([]string{clientID + ".a-twin", clientID + ".fast", clientID + ".wide"}); fmt.Sprint(ids) != want {
		t.Fatalf("connections %v, want %s", ids, want)
	}

	pub := publisher(t, url)
	const slowN, fastN = 1500, 200
	for i := 0; i < slowN; i++ {
		pub.Publish(slowPrefix+"/s", 1, false, fmt.Sprintf(`{"v": %d}`, i))
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.heldCount() >= 20 }) // the slow feed's window is full
	for i := 0; i < fastN; i++ {
		pub.Publish(fastPrefix+"/f", 1, false, fmt.Sprintf(`{"v": %d}`, i)).Wait()
	}
	// fast and wide both match the fast topic: each takes it once, on its
	// own connection.
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("fast") == fastN && sink.count("wide") == fastN })
	if got := sink.count("slow"); got != 0 {
		t.Fatalf("slow stored %d while held", got)
	}
	if got := sink.count("a-twin"); got == 0 {
		t.Fatalf("a-twin, on the slow feed's connection, stored nothing")
	}
	time.Sleep(100 * time.Millisecond)
	if sink.count("fast") != fastN || sink.count("wide") != fastN {
		t.Fatalf("fast %d, wide %d: want %d each, once", sink.count("fast"), sink.count("wide"), fastN)
	}
}

// TestSetFeedsPerFeed: a feed with a new filter gets a connection of its
// own at once; one whose filter no feed has any more loses its connection
// and what still comes on that filter is not taken.
func TestSetFeedsPerFeed(t *testing.T) {
	url := brokerURL(t)
	now := time.Now().UnixNano()
	aPrefix, bPrefix := fmt.Sprintf("perfeed-a/%d", now), fmt.Sprintf("perfeed-b/%d", now)
	a, b := valueFeed(t, "a", aPrefix), valueFeed(t, "b", bPrefix)
	sink := &collect{}
	in := New(Options{URL: url, ClientID: fmt.Sprintf("perfeed-%d", now), PerFeed: true}, []*feed.Feed{a}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	defer in.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	in.SetFeeds([]*feed.Feed{a, b})
	if n := len(in.conns()); n != 2 {
		t.Fatalf("%d connections after adding b, want 2", n)
	}
	// b is live once SetFeeds returns, on its new connection too: a reading
	// published then is taken.
	if s, _ := in.Subscription("b"); s.State != "subscribed" {
		t.Fatalf("b's subscription is %+v when SetFeeds returns, want subscribed", s)
	}
	pub := publisher(t, url)
	pub.Publish(bPrefix+"/1", 1, false, `{"v": 1}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == 1 })

	// A feed with b's filter and a smaller ID names the filter's
	// connection from now on: the new one subscribes, then b's is closed
	// and its session ended.
	b0 := valueFeed(t, "0b", bPrefix)
	in.SetFeeds([]*feed.Feed{a, b, b0})
	if ids := fmt.Sprint(in.conns()[0].id, " ", in.conns()[1].id); ids != in.opts.ClientID+".0b "+in.opts.ClientID+".a" {
		t.Fatalf("connections %s after 0b joined b", ids)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(in, in.opts.ClientID+".b") })
	pub.Publish(bPrefix+"/3", 1, false, `{"v": 3}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == 2 && sink.count("0b") == 1 })
	time.Sleep(retireQuiet) // b's session is ended once its connection is closed
	if sessionKept(t, url, in.opts.ClientID+".b") {
		t.Fatal("the session of b's connection is still kept at the broker")
	}

	in.SetFeeds([]*feed.Feed{b, b0})
	if n := len(in.conns()); n != 1 {
		t.Fatalf("%d connections after retiring a, want 1", n)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(in, in.opts.ClientID+".a") })
	pub.Publish(aPrefix+"/1", 1, false, `{"v": 1}`).Wait()
	pub.Publish(bPrefix+"/2", 1, false, `{"v": 2}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == 3 })
	time.Sleep(retireQuiet)
	if sessionKept(t, url, in.opts.ClientID+".a") {
		t.Fatal("the session of a's connection is still kept at the broker")
	}
	if sink.count("a") != 0 || a.Stats().Received != 0 {
		t.Fatalf("a retired feed still takes messages: %d points, %+v", sink.count("a"), a.Stats())
	}
}

// TestOtherLayoutRetired: readings kept at the broker for the session of
// the other layout of connections (every feed on one connection, as
// before PerFeed, or a connection per feed) are taken when cityscreen
// starts with this one, and that session is ended.
func TestOtherLayoutRetired(t *testing.T) {
	for _, perFeed := range []bool{true, false} {
		t.Run(fmt.Sprintf("perFeed=%v", perFeed), func(t *testing.T) { otherLayoutRetired(t, perFeed) })
	}
}

func otherLayoutRetired(t *testing.T, perFeed bool) {
	url := brokerURL(t)
	now := time.Now().UnixNano()
	prefix := fmt.Sprintf("retire/%d", now)
	clientID := fmt.Sprintf("retire-%d", now)
	f := valueFeed(t, "air", prefix)
	first := New(Options{URL: url, ClientID: clientID, PerFeed: !perFeed}, []*feed.Feed{f}, &collect{}, quiet(), prometheus.NewRegistry())
	first.Start()
	testkit.WaitFor(t, 10*time.Second, first.Connected)
	left := first.conns()[0].id
	first.Stop(context.Background())

	pub := publisher(t, url)
	const n = 30
	for i := 0; i < n; i++ { // kept for the first layout's session while it is away
		pub.Publish(prefix+"/s", 1, false, fmt.Sprintf(`{"v": %d}`, i)).Wait()
	}
	sink := &collect{}
	in := New(Options{URL: url, ClientID: clientID, PerFeed: perFeed}, []*feed.Feed{f}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") == n })
	// Once the other layout's connection has closed, a new reading comes
	// on this layout's connection only: published before, it could come on
	// both while the other still drained.
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(in, left) })
	pub.Publish(prefix+"/s", 1, false, `{"v": 100}`).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("air") >= n+1 })
	time.Sleep(retireQuiet) // the session is ended once the connection is closed
	if got := sink.count("air"); got != n+1 {
		t.Fatalf("stored %d, want %d: each reading once", got, n+1)
	}
	in.Stop(context.Background())

	if sessionKept(t, url, left) {
		t.Fatalf("the session of %s is still kept at the broker", left)
	}
}

// closed reports whether the ingester has closed a retired connection with
// the client ID.
func closed(in *Ingester, id string) bool {
	in.lanesMu.Lock()
	defer in.lanesMu.Unlock()
	for _, c := range in.retired {
		if c.id == id {
			return !c.client.IsConnected()
		}
	}
	return false
}

// sessionKept reports whether the broker keeps a session for the client
// ID. Asking leaves an empty session of that ID behind.
func sessionKept(t *testing.T, url, id string) bool {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false))
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(0)
	return tok.(*mqtt.ConnectToken).SessionPresent()
}

// TestRenamedConnectionRetired: a feed with a smaller ID that shares a
// filter names that filter's connection from the next start on; what the
// session under the earlier name kept meanwhile is taken, for both feeds,
// and that session is ended.
func TestRenamedConnectionRetired(t *testing.T) {
	url := brokerURL(t)
	now := time.Now().UnixNano()
	prefix := fmt.Sprintf("renamed/%d", now)
	clientID := fmt.Sprintf("renamed-%d", now)
	b, b0 := valueFeed(t, "b", prefix), valueFeed(t, "0b", prefix)
	first := New(Options{URL: url, ClientID: clientID, PerFeed: true}, []*feed.Feed{b}, &collect{}, quiet(), prometheus.NewRegistry())
	first.Start()
	testkit.WaitFor(t, 10*time.Second, first.Connected)
	first.Stop(context.Background())

	pub := publisher(t, url)
	const n = 20
	for i := 0; i < n; i++ { // kept for clientID.b while cityscreen is away
		pub.Publish(prefix+"/s", 1, false, fmt.Sprintf(`{"v": %d}`, i)).Wait()
	}
	sink := &collect{}
	in := New(Options{URL: url, ClientID: clientID, PerFeed: true}, []*feed.Feed{b, b0}, sink, quiet(), prometheus.NewRegistry())
	in.Start()
	defer in.Stop(context.Background())
	if id := in.conns()[0].id; id != clientID+".0b" {
		t.Fatalf("connection %s, want %s.0b", id, clientID)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return sink.count("b") == n && sink.count("0b") == n })
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(in, clientID+".b") })
	time.Sleep(retireQuiet)
	if sessionKept(t, url, clientID+".b") {
		t.Fatal("the session under the earlier name is still kept at the broker")
	}
}

// TestReadyNamesTheConnectionsDown: with a connection per feed, readiness
// says which feeds' connections are down.
func TestReadyNamesTheConnectionsDown(t *testing.T) {
	now := time.Now().UnixNano()
	a, b := valueFeed(t, "a", fmt.Sprintf("ready-a/%d", now)), valueFeed(t, "b", fmt.Sprintf("ready-b/%d", now))
	in := New(Options{URL: "tcp://127.0.0.1:1", ClientID: "cs", PerFeed: true}, []*feed.Feed{a, b}, &collect{}, quiet(), prometheus.NewRegistry())
	if err := in.Ready(); err != ErrNotConnected {
		t.Fatalf("Ready() = %v with nothing up, want %v", err, ErrNotConnected)
	}
	in.conns()[0].connected.Store(true)
	if err := in.Ready(); err == nil || err.Error() != "not connected to the MQTT broker: 1 of 2 connections are up; down: cs.b" {
		t.Fatalf("Ready() = %v", err)
	}
	in.conns()[1].connected.Store(true)
	if err := in.Ready(); err != nil {
		t.Fatalf("Ready() = %v with every connection up", err)
	}
}

// TestOtherLayoutKeptUntilDurable: a session of the other layout whose
// messages could not be made durable is not ended: the next start takes
// them again.
func TestOtherLayoutKeptUntilDurable(t *testing.T) {
	url := brokerURL(t)
	now := time.Now().UnixNano()
	prefix := fmt.Sprintf("kept/%d", now)
	clientID := fmt.Sprintf("kept-%d", now)
	f := valueFeed(t, "air", prefix)
	first := New(Options{URL: url, ClientID: clientID}, []*feed.Feed{f}, &collect{}, quiet(), prometheus.NewRegistry())
	first.Start()
	testkit.WaitFor(t, 10*time.Second, first.Connected)
	first.Stop(context.Background())
	pub := publisher(t, url)
	const n = 10
	for i := 0; i < n; i++ {
		pub.Publish(prefix+"/s", 1, false, fmt.Sprintf(`{"v": %d}`, i)).Wait()
	}

	failing := &collect{fail: fmt.Errorf("disk full")}
	second := New(Options{URL: url, ClientID: clientID, PerFeed: true}, []*feed.Feed{f}, failing, quiet(), prometheus.NewRegistry())
	second.Start()
	testkit.WaitFor(t, 10*time.Second, func() bool { return failing.count("air") == n })
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(second, clientID) })
	second.Stop(context.Background())

	working := &collect{}
	third := New(Options{URL: url, ClientID: clientID, PerFeed: true}, []*feed.Feed{f}, working, quiet(), prometheus.NewRegistry())
	third.Start()
	defer third.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, func() bool { return working.count("air") == n })
	testkit.WaitFor(t, 10*time.Second, func() bool { return closed(third, clientID) })
	time.Sleep(retireQuiet)
	if sessionKept(t, url, clientID) {
		t.Fatal("the session is still kept once its messages are durable")
	}
}

// TestSubscriptionState: a feed whose filter the broker refuses (an ACL;
// the embedded broker refuses such a subscription, Mosquitto grants it and
// withholds the messages) is "refused", the others "subscribed", each with
// its connection's client ID; a connection not up is "down".
func TestSubscriptionState(t *testing.T) {
	s := mochi.New(&mochi.Options{Logger: quiet()})
	ledger := &auth.Ledger{
		Auth: auth.AuthRules{{Allow: true}},
		ACL:  auth.ACLRules{{Filters: auth.Filters{"shut/#": auth.Deny}}},
	}
	if err := s.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	stop := func() { closeOnce.Do(func() { s.Close() }) }
	defer stop()
	open, shut := valueFeed(t, "open", "open/x"), valueFeed(t, "shut", "shut/x")
	// Short connection attempts: once the broker is gone, paho's attempts
	// end soon after Stop.
	in := New(Options{URL: "tcp://" + addr, ClientID: "cs", PerFeed: true, ConnectTimeout: 500 * time.Millisecond, MaxReconnectInterval: time.Second},
		[]*feed.Feed{open, shut}, &collect{}, quiet(), prometheus.NewRegistry())
	in.Start()
	defer in.Stop(context.Background())
	testkit.WaitFor(t, 10*time.Second, in.Connected)
	for id, want := range map[string]string{"open": "subscribed", "shut": "refused"} {
		sub, ok := in.Subscription(id)
		if !ok || sub.State != want || fmt.Sprint(sub.ClientIDs) != "[cs."+id+"]" {
			t.Fatalf("Subscription(%s) = %+v, %v; want %s on cs.%s", id, sub, ok, want, id)
		}
	}
	if _, ok := in.Subscription("nope"); ok {
		t.Fatal("Subscription of a feed the ingester does not have")
	}
	stop()
	testkit.WaitFor(t, 10*time.Second, func() bool { sub, _ := in.Subscription("open"); return sub.State == "down" })
	in.Stop(context.Background())
	time.Sleep(3 * time.Second) // paho's reconnecting goroutines end after their backoff and attempt
}

// TestSetFeedsBrokerOutOfReach: SetFeeds waits for a new feed's connection
// no longer than the connect timeout when the broker cannot be reached (the
// feed then shows down, and its connection keeps trying), and no longer
// than the ingester runs.
func TestSetFeedsBrokerOutOfReach(t *testing.T) {
	before := runtime.NumGoroutine()
	url := "tcp://127.0.0.1:" + freePort(t) // nothing listens there
	returns := func(in *Ingester, feeds []*feed.Feed, then func()) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			in.SetFeeds(feeds)
			close(done)
		}()
		if then != nil {
			then()
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("SetFeeds still waits for a connection to a broker out of reach")
		}
	}
	a, b, c := valueFeed(t, "a", "reach/a"), valueFeed(t, "b", "reach/b"), valueFeed(t, "c", "reach/c")
	opts := Options{URL: url, ClientID: "reach", PerFeed: true, ConnectTimeout: 200 * time.Millisecond, MaxReconnectInterval: time.Second}
	in := New(opts, []*feed.Feed{a}, &collect{}, quiet(), prometheus.NewRegistry())
	in.Start()
	returns(in, []*feed.Feed{a, b}, nil)
	if s, _ := in.Subscription("b"); s.State != "down" {
		t.Fatalf("b's subscription is %+v, want down", s)
	}
	in.Stop(context.Background())

	// A long connect timeout: Stop ends the wait.
	opts.ConnectTimeout = time.Hour
	in = New(opts, []*feed.Feed{a}, &collect{}, quiet(), prometheus.NewRegistry())
	in.Start()
	returns(in, []*feed.Feed{a, c}, func() {
		time.Sleep(100 * time.Millisecond)
		in.Stop(context.Background())
	})
	// paho ends a connection that never connected once its attempt in
	// progress ends, a second or so after Stop.
	testkit.WaitFor(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}
