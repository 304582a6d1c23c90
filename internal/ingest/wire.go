package ingest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// readBuffer is the read buffer of a broker connection.
const readBuffer = 64 << 10

// openConn dials the broker as paho would, and buffers what is read: paho
// reads each packet straight from the connection, a byte at a time for
// its header, which costs three or four system calls per message; through
// the buffer a burst of messages costs one.
func openConn(uri *url.URL, o mqtt.ClientOptions) (*bufferedConn, error) {
	dialer := &net.Dialer{Timeout: o.ConnectTimeout}
	var c net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		c, err = dialer.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		c, err = tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLSConfig)
	case "ws", "wss":
		u := *uri
		u.User = nil // gorilla refuses URLs with user information
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLSConfig
		}
		c, err = mqtt.NewWebsocket(u.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		return nil, fmt.Errorf("unknown broker scheme %q", uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	go bc.flush()
	return bc, nil
}

// bufferedConn reads through a buffer (paho reads from one goroutine), and
// writes what paho writes (mostly acknowledgements, one packet per write)
// from a goroutine of its own that sends everything written meanwhile in
// one system call: never later than at once, but together when they come
// faster than the network takes them.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu  sync.Mutex // guards buf and err
	buf []byte
	err error
	// sending is held while taking the buffer and writing it, so that
	// what Close sends last goes after what the flusher took.
	sending sync.Mutex
	kick    chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write queues p for the flusher; an earlier failure to send, or the
// connection's end, is returned.
func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *bufferedConn) flush() {
	var spare []byte
	for {
		select {
		case <-c.kick:
		case <-c.closed:
			return
		}
		var ok bool
		if spare, ok = c.send(spare); !ok {
			return
		}
	}
}

// send writes what is queued, and returns an empty buffer for the next
// round, and false once sending failed (the connection is then closed, so
// that paho's reader sees it).
func (c *bufferedConn) send(spare []byte) ([]byte, bool) {
	c.sending.Lock()
	defer c.sending.Unlock()
	c.mu.Lock()
	b := c.buf
	c.buf = spare[:0]
	c.mu.Unlock()
	if len(b) == 0 {
		return b, true
	}
	if _, err := c.Conn.Write(b); err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.Conn.Close()
		return nil, false
	}
	return b[:0], true
}

// puback queues the acknowledgement of the QoS 1 message with the ID.
func (c *bufferedConn) puback(id uint16) {
	c.Write([]byte{0x40, 0x02, byte(id >> 8), byte(id)}) // PUBACK, remaining length 2, message ID
}

// Close sends what is queued (paho's last acknowledgements and its
// DISCONNECT) and closes the connection.
func (c *bufferedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	c.send(nil)
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// sessionStore is paho's memory store, except that it does not keep the
// QoS 1 messages received: ingest acknowledges them itself (see
// message.acknowledge), so paho's entry for each would never be removed.
// What it keeps for a persistent session does not depend on them: paho
// sends nothing again for a received QoS 1 message.
type sessionStore struct{ *mqtt.MemoryStore }

func newSessionStore() sessionStore { return sessionStore{mqtt.NewMemoryStore()} }

func (s sessionStore) Put(key string, p packets.ControlPacket) {
	if pub, ok := p.(*packets.PublishPacket); ok && pub.Qos == 1 && strings.HasPrefix(key, "i.") {
		return
	}
	s.MemoryStore.Put(key, p)
}
