package app

import (
	"strconv"
	"strings"
	"sync"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// gateMaxHeld bounds the readings a gate holds while the panels are filled
// (a minute at 10,000 a second); beyond it they go to the panels at once,
// and a reading may then be counted twice until it leaves its windows.
const gateMaxHeld = 600_000

// gate stands between a screens-only stream and the panels while they are
// filled from InfluxDB. An instance that takes the full stream on a clean
// session (while other instances store it) subscribes first and holds
// what arrives; the fill then skips every reading the stream already
// brought (the same key: measurement, tags, time), and what was held goes
// to the panels after it. So readings stored before the subscription come
// from InfluxDB, later ones from the stream, and none twice.
type gate struct {
	engine *panel.Engine
	mu     sync.Mutex
	open   bool
	held   []heldReadings
	n      int
	keys   map[string]struct{}
}

type heldReadings struct {
	feed   string
	points []feed.Point
}

func newGate(e *panel.Engine) *gate { return &gate{engine: e, keys: map[string]struct{}{}} }

// Observe passes readings to the panels, or holds them while the gate is
// shut.
func (g *gate) Observe(feedID string, points []feed.Point) {
	g.mu.Lock()
	if g.open || g.n >= gateMaxHeld {
		g.mu.Unlock()
		g.engine.Observe(feedID, points)
		return
	}
	defer g.mu.Unlock()
	g.held = append(g.held, heldReadings{feedID, points})
	g.n += len(points)
	for _, p := range points {
		g.keys[pointKey(p)] = struct{}{}
	}
}

// Seen reports whether the stream has brought a reading with p's key.
func (g *gate) Seen(p feed.Point) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.keys[pointKey(p)]
	return ok
}

// Open hands what was held to the panels, in the order it came, and lets
// everything through from then on.
func (g *gate) Open() (held int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, h := range g.held {
		g.engine.Observe(h.feed, h.points)
	}
	held = g.n
	g.open, g.held, g.keys = true, nil, nil
	return held
}

// pointKey is what InfluxDB keys a point by: measurement, tag set, time.
// A point's tags are sorted by key already (feed.Point: the decoders sort
// them, and store.History reads them in key order).
func pointKey(p feed.Point) string {
	var b strings.Builder
	b.WriteString(p.Measurement)
	for _, t := range p.Tags {
		b.WriteByte(0)
		b.WriteString(t.Key)
		b.WriteByte('=')
		b.WriteString(t.Value)
	}
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(p.Time.UnixNano(), 10))
	return b.String()
}
