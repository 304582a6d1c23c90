package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// token is an MQTT publication's token, completed or not.
type token struct {
	done chan struct{}
	err  error
}

func newToken(completed bool, err error) *token {
	t := &token{done: make(chan struct{}), err: err}
	if completed {
		close(t.done)
	}
	return t
}

func (t *token) Wait() bool { <-t.done; return true }
func (t *token) WaitTimeout(d time.Duration) bool {
	select {
	case <-t.done:
		return true
	case <-time.After(d):
		return false
	}
}
func (t *token) Done() <-chan struct{} { return t.done }
func (t *token) Error() error          { return t.err }

// TestSettleStopsAtStop: a window the broker never acknowledges (it went
// away) does not hold citysim's stop for the 10 s it waits otherwise, and
// what was not acknowledged counts as failed.
func TestSettleStopsAtStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var published, failed atomic.Uint64
	start := time.Now()
	settle(ctx, []mqtt.Token{newToken(true, nil), newToken(false, nil), newToken(true, errors.New("refused")), newToken(false, nil)}, &published, &failed)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("settle waited %v after the stop", waited)
	}
	if published.Load() != 1 || failed.Load() != 3 {
		t.Fatalf("published %d, failed %d; want 1 and 3", published.Load(), failed.Load())
	}
}
