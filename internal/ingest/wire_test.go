package ingest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// What is written arrives whole and in order, what Close finds queued is
// sent before the connection closes, and a failed send fails later writes.
func TestBufferedConn(t *testing.T) {
	a, b := net.Pipe()
	c := &bufferedConn{Conn: a, r: bufio.NewReader(a), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.flush()
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	var want bytes.Buffer
	for i := 0; i < 5000; i++ {
		p := fmt.Sprintf("packet %d;", i)
		want.WriteString(p)
		if n, err := c.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	c.Close()
	if all := <-got; !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d, or out of order", len(all), want.Len())
	}

	a, b = net.Pipe()
	c = &bufferedConn{Conn: a, r: bufio.NewReader(a), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.flush()
	b.Close()
	c.Write([]byte("lost"))
	for i := 0; ; i++ {
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
		if i > 1e6 {
			t.Fatal("writes on a broken connection keep succeeding")
		}
	}
}

// countingClient counts Disconnect calls; nothing else of it is used.
type countingClient struct {
	mqtt.Client
	disconnects atomic.Int32
}

func (c *countingClient) Disconnect(uint) {
	c.disconnects.Add(1)
	time.Sleep(10 * time.Millisecond) // as paho's, it takes a while
}

// A connection closed by several goroutines at once, and again later, is
// disconnected once: paho's Disconnect, called again while a first one is
// under way, can leave a goroutine waiting forever.
func TestCloseDisconnectsOnce(t *testing.T) {
	client := &countingClient{}
	c := newConn("cityscreen-test", &lane{})
	c.client = client
	c.connected.Store(true)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
		}()
	}
	wg.Wait()
	c.close()
	if n := client.disconnects.Load(); n != 1 {
		t.Errorf("Disconnect called %d times, want 1", n)
	}
	if !c.closed.Load() || c.connected.Load() {
		t.Errorf("closed %v, connected %v after close; want true, false", c.closed.Load(), c.connected.Load())
	}
}
