package ingest

import (
	"fmt"
	"log/slog"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is the embedded MQTT broker, for sites without one of their own.
// It listens on a loopback address only and lets any local client in.
type Broker struct {
	server *mochi.Server
	addr   string
}

// StartBroker starts the embedded broker on addr (host:port, loopback).
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	s := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       log.With("component", "broker"),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	return &Broker{server: s, addr: addr}, nil
}

// URL is where MQTT clients reach the broker.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.server.Close() }
