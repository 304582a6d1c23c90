package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// slowDisk is a sink that holds each message's done until the test calls
// finish: a disk that takes as long as the test wants.
type slowDisk struct {
	mu   sync.Mutex
	done []func(error)
}

func (h *slowDisk) Store(_ string, _ []feed.Point, _ []byte, done func(error)) { h.hold(done) }
func (h *slowDisk) Quarantine(_, _ string, _ []byte, _ time.Time, _ string, done func(error)) {
	h.hold(done)
}
func (h *slowDisk) hold(done func(error)) { h.mu.Lock(); h.done = append(h.done, done); h.mu.Unlock() }
func (h *slowDisk) count() int            { h.mu.Lock(); defer h.mu.Unlock(); return len(h.done) }
func (h *slowDisk) finish(i int, err error) {
	h.mu.Lock()
	done := h.done[i]
	h.mu.Unlock()
	done(err)
}

func namedFeed(t *testing.T, id, topic string) *feed.Feed {
	t.Helper()
	f, err := feed.New(feed.Spec{ID: id, Topic: topic, Measurement: id,
		Fields: map[string]feed.FieldSpec{"v": {Type: "float"}}}, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fakeIngester starts an ingester of the feeds on a fake broker, in the
// test's bubble, and waits until it is subscribed.
func fakeIngester(t *testing.T, sink Sink, feeds ...*feed.Feed) (*Ingester, *fakeBroker) {
	t.Helper()
	b := &fakeBroker{}
	in := New(Options{URL: "tcp://broker.invalid:1883", ClientID: "c", Workers: 1, CleanSession: true, NewClient: b.NewClient}, feeds, sink, quiet(), nil)
	in.Start()
	synctest.Wait()
	if !in.Connected() {
		t.Fatal("not connected once the fake broker took the connection")
	}
	return in, b
}

// TestAcknowledgedOnceDurable: a message is acknowledged when the sink
// has made it durable, not before, and never when it could not be.
func TestAcknowledgedOnceDurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &slowDisk{}
		in, b := fakeIngester(t, sink, namedFeed(t, "air", "city/air/{district}"))
		if got := b.subscriptions("c"); !slices.Equal(got, []string{"city/air/+"}) {
			t.Fatalf("subscribed %q, want the feed's filter", got)
		}
		b.publish("city/air/nangang", `{"v": 1}`)
		synctest.Wait()
		if sink.count() != 1 {
			t.Fatalf("the sink has %d messages, want 1", sink.count())
		}
		if b.has("ack 1") {
			t.Fatal("acknowledged before the sink made it durable")
		}
		sink.finish(0, nil)
		if !b.has("ack 1") {
			t.Fatal("not acknowledged once durable")
		}
		b.publish("city/air/daoli", `{"v": 2}`)
		synctest.Wait()
		sink.finish(1, errors.New("disk full"))
		if err := in.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b.has("ack 2") {
			t.Fatal("a message that could not be made durable was acknowledged")
		}
		if ev := b.Events(); ev[len(ev)-1] != "disconnect c" {
			t.Fatalf("events %q, want the disconnection last", ev)
		}
	})
}

// TestStopSettlesFirst: Stop waits for what was taken to be durable and
// acknowledged before it disconnects.
func TestStopSettlesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &slowDisk{}
		in, b := fakeIngester(t, sink, namedFeed(t, "air", "city/air/{district}"))
		b.publish("city/air/nangang", `{"v": 1}`)
		synctest.Wait()
		stopped := make(chan error, 1)
		go func() { stopped <- in.Stop(context.Background()) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Stop returned with a message taken and not yet durable")
		default:
		}
		if b.has("disconnect c") {
			t.Fatal("disconnected with a message taken and not yet durable")
		}
		b.publish("city/air/daoli", `{"v": 2}`) // arrives while stopping: not taken
		sink.finish(0, nil)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		want := []string{"connect c", "subscribe c city/air/+", "ack 1", "disconnect c"}
		if got := b.Events(); !slices.Equal(got, want) {
			t.Fatalf("events %q, want %q", got, want)
		}
		if sink.count() != 1 {
			t.Fatalf("the sink took %d messages, want only the one before Stop", sink.count())
		}
	})
}

// TestSetFeedsSubscribes: a feed added is subscribed on the running
// connection, and a feed removed unsubscribed, without reconnecting.
func TestSetFeedsSubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &slowDisk{}
		air, traffic := namedFeed(t, "air", "city/air/{district}"), namedFeed(t, "traffic", "city/traffic/{district}")
		in, b := fakeIngester(t, sink, air)
		in.SetFeeds([]*feed.Feed{air, traffic})
		synctest.Wait()
		if got := b.subscriptions("c"); !slices.Equal(got, []string{"city/air/+", "city/traffic/+"}) {
			t.Fatalf("subscribed %q after adding a feed", got)
		}
		in.SetFeeds([]*feed.Feed{traffic})
		synctest.Wait()
		if got := b.subscriptions("c"); !slices.Equal(got, []string{"city/traffic/+"}) {
			t.Fatalf("subscribed %q after removing a feed", got)
		}
		b.publish("city/traffic/nangang", `{"v": 3}`)
		synctest.Wait()
		if sink.count() != 1 {
			t.Fatalf("the sink has %d messages, want the new feed's one", sink.count())
		}
		sink.finish(0, nil)
		if err := in.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := []string{"connect c", "subscribe c city/air/+", "subscribe c city/traffic/+", "unsubscribe c city/air/+", "ack 1", "disconnect c"}
		if got := b.Events(); !slices.Equal(got, want) {
			t.Fatalf("events %q, want %q", got, want)
		}
	})
}
