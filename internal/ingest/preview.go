package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// PreviewMessage is one message seen while previewing a topic.
type PreviewMessage struct {
	Time      time.Time `json:"time"`
	Topic     string    `json:"topic"`
	Payload   string    `json:"payload"`
	Size      int       `json:"size"`
	Truncated bool      `json:"truncated"`
}

// Preview limits.
const (
	PreviewMaxMessages = 200
	previewMaxPayload  = 1024
)

// CheckFilter reports what is wrong with an MQTT topic filter, if anything.
func CheckFilter(filter string) error { return feed.CheckFilter(filter) }

// Preview listens on filter for d, over a connection of its own (clean
// session, QoS 0, nothing acknowledged for the feeds), and returns the
// messages seen, at most PreviewMaxMessages, payloads cut at 1 KiB.
func (in *Ingester) Preview(ctx context.Context, filter string, d time.Duration) ([]PreviewMessage, error) {
	if err := CheckFilter(filter); err != nil {
		return nil, err
	}
	id := make([]byte, 6)
	rand.Read(id)
	c := in.opts.NewClient(in.brokerOptions("cityscreen-preview-" + hex.EncodeToString(id)).
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		return nil, fmt.Errorf("connecting to the broker: %v", tok.Error())
	}
	defer c.Disconnect(100)
	var mu sync.Mutex
	out := []PreviewMessage{}
	full := make(chan struct{})
	tok := c.Subscribe(filter, 0, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		if len(out) >= PreviewMaxMessages {
			return
		}
		p := m.Payload()
		pm := PreviewMessage{Time: time.Now().UTC(), Topic: m.Topic(), Size: len(p)}
		// Personal data is hidden here as everywhere: by topic.
		p = in.Privacy().Scrub(m.Topic(), p)
		if len(p) > previewMaxPayload {
			p, pm.Truncated = p[:previewMaxPayload], true
		}
		pm.Payload = strings.ToValidUTF8(string(p), "\uFFFD")
		out = append(out, pm)
		if len(out) == PreviewMaxMessages {
			close(full)
		}
	})
	if !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribing to %q: %v", filter, tok.Error())
	}
	select {
	case <-time.After(d):
	case <-full:
	case <-ctx.Done():
	}
	c.Unsubscribe(filter).WaitTimeout(time.Second)
	mu.Lock()
	defer mu.Unlock()
	return append([]PreviewMessage(nil), out...), nil
}
