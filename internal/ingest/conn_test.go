package ingest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
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
