package hub

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// How frames reach the clients.
//
// Each client has a bounded queue of encoded frames, shared by all the
// screen's clients, and one owner at a time that writes it: nobody, a
// fan-out worker or the client's own writer goroutine. A frame queued for
// an idle client is written by a fan-out worker: a few goroutines a frame
// (one per core) that each write to their share of the clients without
// blocking, so that 10,000 clients cost 10,000 write system calls and not
// also 10,000 goroutines woken and parked. A client whose socket cannot
// take all of a frame at once is handed to its writer, which finishes the
// queue with blocking writes under the write deadline, as every write did
// before; a connection that cannot be written without blocking (TLS) is
// always written by its writer. A full queue, or a write past the deadline,
// drops the client as slow.

// Who is writing a client's queue.
const (
	ownerNone   = iota
	ownerWorker // a fan-out worker, writing without blocking
	ownerWriter // the client's writer goroutine
)

// errWouldBlock: the socket took less than the whole frame.
var errWouldBlock = errors.New("hub: the socket is full")

type client struct {
	tag     string // who it is, for Reload and Connected; "" for none
	screen  string
	turn    int             // which of the screen's turns it takes (Turn)
	revoked <-chan struct{} // closed when its credentials are revoked; nil for never
	conn    *websocket.Conn
	nc      net.Conn        // conn's connection, which the hub writes itself
	raw     syscall.RawConn // nc's descriptor for writes that never block; nil for none (TLS)
	rawDo   func(fd uintptr) bool
	wake    chan struct{} // the writer owns the queue now (1 buffered)
	done    chan struct{} // closed to stop the writer
	once    sync.Once
	reason  string // why it was stopped, for the close frame
	code    int

	mu      sync.Mutex
	idle    sync.Cond // signalled when a worker gives the queue up after the stop
	queue   [][]byte  // encoded frames, queue[head] first
	head    int
	off     int // bytes of queue[head] written
	owner   int
	stopped bool
	// What a worker writes and what came of it: fields, not a closure's
	// variables, so that a write allocates nothing.
	rawBuf []byte
	rawN   int
	rawErr error
}

func newClient(conn *websocket.Conn, tag, screen string, revoked <-chan struct{}, queue int) *client {
	c := &client{conn: conn, nc: conn.UnderlyingConn(), tag: tag, screen: screen, revoked: revoked,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.idle.L = &c.mu
	if sc, ok := c.nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
		c.rawDo = func(fd uintptr) bool {
			c.rawN, c.rawErr = syscall.Write(int(fd), c.rawBuf)
			return true // done, whatever it took: never wait here
		}
	}
	// Every write is the hub's: gorilla answers pings and closes by
	// writing itself, which would cut into a frame a worker is writing.
	// A pong waits in the queue like a frame, within its bound: a client
	// that sends pings and reads nothing fills no memory (RFC 6455 5.5.3
	// lets a pong answer only the latest of several pings).
	conn.SetPingHandler(func(data string) error {
		c.enqueue(encode(websocket.PongMessage, []byte(data)), queue, false)
		return nil
	})
	conn.SetCloseHandler(func(int, string) error { return nil })
	return c
}

// enqueue adds a frame to the client's queue; false if the queue already
// holds limit frames (0 for no limit). When nobody was writing the queue,
// it becomes a fan-out worker's if fast and the connection can be written
// without blocking, and toWorker asks the caller to hand it to one; else
// it becomes the writer's, which enqueue wakes. When someone is already
// writing the queue, they write this frame too.
func (c *client) enqueue(b []byte, limit int, fast bool) (toWorker, ok bool) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return false, true
	}
	if limit > 0 && len(c.queue)-c.head >= limit {
		c.mu.Unlock()
		return false, false
	}
	c.queue = append(c.queue, b)
	if c.owner != ownerNone {
		c.mu.Unlock()
		return false, true
	}
	toWorker = fast && c.raw != nil
	c.owner = ownerWriter
	if toWorker {
		c.owner = ownerWorker
	}
	c.mu.Unlock()
	if !toWorker {
		c.wakeWriter()
	}
	return toWorker, true
}

func (c *client) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default: // already woken
	}
}

// handTo gives the queue to another owner.
func (c *client) handTo(owner int) {
	c.mu.Lock()
	c.owner = owner
	c.idle.Broadcast()
	c.mu.Unlock()
	if owner == ownerWriter {
		c.wakeWriter()
	}
}

// flush writes the queue until it is empty, the client is stopped or a
// write fails. A worker (block false) writes only what the socket takes at
// once and returns errWouldBlock for the rest; the writer waits for the
// socket, up to the write timeout per frame. On success, or once stopped,
// the queue has no owner; on an error the caller still owns it.
func (c *client) flush(block bool, timeout time.Duration) error {
	for {
		c.mu.Lock()
		if c.head == len(c.queue) || c.stopped {
			if block {
				c.nc.SetWriteDeadline(time.Time{}) // the workers' writes need none
			}
			c.owner = ownerNone
			c.idle.Broadcast()
			c.mu.Unlock()
			return nil
		}
		b := c.queue[c.head][c.off:]
		c.mu.Unlock()
		var n int
		var err error
		if block {
			c.nc.SetWriteDeadline(time.Now().Add(timeout))
			n, err = c.nc.Write(b)
		} else {
			n, err = c.tryWrite(b)
		}
		c.mu.Lock()
		if c.off += n; c.off == len(c.queue[c.head]) {
			c.queue[c.head] = nil
			c.head, c.off = c.head+1, 0
			switch {
			case c.head == len(c.queue):
				c.queue, c.head = c.queue[:0], 0
			case c.head >= 16 && 2*c.head >= len(c.queue):
				// A queue that never empties (a client always a frame
				// or two behind) moves its frames to the front, so that
				// its array does not grow with every frame appended.
				n := copy(c.queue, c.queue[c.head:])
				clear(c.queue[n:])
				c.queue, c.head = c.queue[:n], 0
			}
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// tryWrite writes what the socket takes of b now, without waiting.
func (c *client) tryWrite(b []byte) (int, error) {
	c.rawBuf, c.rawN, c.rawErr = b, 0, nil
	err := c.raw.Write(c.rawDo)
	n, werr := max(c.rawN, 0), c.rawErr
	c.rawBuf = nil
	switch {
	case errors.Is(err, net.ErrClosed):
		return 0, err
	case err != nil: // a deadline the writer left behind
		return 0, errWouldBlock
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return 0, errWouldBlock
	case werr != nil:
		return 0, werr
	case n < len(b):
		return n, errWouldBlock
	}
	return n, nil
}

// dispatch has the fan-out workers write the queues of clients that were
// idle when a frame was queued for them: one worker per core, each with
// its share. It does not wait for them.
func (h *Hub) dispatch(cs []*client) {
	workers := min(runtime.GOMAXPROCS(0), (len(cs)+63)/64)
	for w := 0; w < workers; w++ {
		share := cs[w*len(cs)/workers : (w+1)*len(cs)/workers]
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for _, c := range share {
				switch err := c.flush(false, 0); {
				case err == nil:
				case errors.Is(err, errWouldBlock):
					// Its writer waits for the socket, as long as the
					// write timeout allows.
					c.handTo(ownerWriter)
				default:
					c.handTo(ownerNone)
					h.unregister(c.screen, c, websocket.CloseAbnormalClosure, "")
				}
			}
		}()
	}
}

// write is the client's writer: it writes the queue when a worker could
// not, and pings, until the client is stopped; then it says why in a close
// frame and closes the connection, which ends read too.
func (h *Hub) write(c *client) {
	defer h.wg.Done()
	defer c.conn.Close()
	ping := time.NewTicker(h.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
			if err := c.flush(true, h.opts.WriteTimeout); err != nil {
				// A frame that cannot be written within the write timeout
				// is a client too slow to keep, as a full queue is.
				var ne net.Error
				dropped := false
				select {
				case <-c.done:
					dropped = true // already dropped as slow: its queue filled
				default:
				}
				if errors.As(err, &ne) && ne.Timeout() && !dropped {
					h.slowDrops.Inc()
					h.log.Warn("dropping slow websocket client", "screen", c.screen, "client", c.nc.RemoteAddr().String(), "err", err)
				}
				h.unregister(c.screen, c, websocket.CloseAbnormalClosure, "")
				c.end()
				return
			}
		case <-ping.C:
			c.enqueue(pingFrame, 0, false) // beyond the bound: one an interval
		case <-c.revoked:
			// The writer watches this too: no goroutine of its own per client.
			h.unregister(c.screen, c, CloseRevoked, "access revoked or signed out")
			c.revoked = nil
		case <-c.done:
			if !c.end() && c.code != websocket.CloseAbnormalClosure {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				c.nc.Write(encode(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.reason)))
			}
			return
		}
	}
}

// end stops the queue's writing and waits for a worker writing it to give
// it up. It reports whether a frame was left part written, after which
// the connection can only be closed.
func (c *client) end() (partial bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for c.owner == ownerWorker {
		c.idle.Wait()
	}
	c.queue, c.head = nil, 0
	return c.off != 0
}

func (c *client) stop(code int, reason string) {
	c.once.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

var pingFrame = encode(websocket.PingMessage, nil)

// encode is a whole websocket frame from the server (RFC 6455 5.2: final,
// unmasked) of one message.
func encode(messageType int, payload []byte) []byte {
	n := len(payload)
	b := make([]byte, 0, n+10)
	b = append(b, 0x80|byte(messageType))
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}
