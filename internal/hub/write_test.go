package hub

import (
	"net"
	"testing"
	"time"
)

// busyConn is a connection whose every write brings the client another
// frame, as a client always a frame behind its screen sees.
type busyConn struct {
	net.Conn
	c      *client
	writes int
}

func (b *busyConn) Write(p []byte) (int, error) {
	if b.writes++; b.writes < 10000 {
		b.c.enqueue([]byte("frame"), 64, false)
	}
	return len(p), nil
}

func (b *busyConn) SetWriteDeadline(time.Time) error { return nil }

// A queue that never empties keeps an array of about its bound, not one
// that grows with every frame it was given.
func TestQueueThatNeverEmpties(t *testing.T) {
	c := &client{done: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.idle.L = &c.mu
	conn := &busyConn{c: c}
	c.nc = conn
	if toWorker, _ := c.enqueue([]byte("first"), 64, false); toWorker || c.owner != ownerWriter {
		t.Fatalf("an idle client without a descriptor is its writer's, got owner %d", c.owner)
	}
	if err := c.flush(true, time.Second); err != nil {
		t.Fatal(err)
	}
	if conn.writes != 10000 || len(c.queue) != 0 || c.owner != ownerNone {
		t.Fatalf("%d writes, %d queued, owner %d: want 10000, 0, none", conn.writes, len(c.queue), c.owner)
	}
	if cap(c.queue) > 64 {
		t.Fatalf("the queue's array holds %d frames after 10,000 through a queue of 1 or 2", cap(c.queue))
	}
}
