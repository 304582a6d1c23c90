package app

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Screens from partials (docs/scaling.md): with cluster.partials, an
// instance that stores readings collects its share's partial aggregates
// (panel.Engine.Collect) and publishes them, sealed, every
// cluster.partial_interval; an instance that serves screens merges every
// share's into its panels instead of taking the full stream. Case feeds
// still come whole to the instances that serve screens: their books need
// every event.

// partialsTopic is the cluster's subtopic of the partials.
const partialsTopic = "partials"

// partialBatch is what one storing instance collected in one interval.
type partialBatch struct {
	Run       string        `json:"run"` // the instance's start: a restart's batches count anew
	Seq       uint64        `json:"seq"`
	Published time.Time     `json:"at"`
	Deltas    []panel.Delta `json:"d"`
}

// collector takes a storing instance's share into partials: every feed's
// but the case feeds', which the instances that serve screens take whole.
type collector struct {
	engine *panel.Engine
	mu     sync.Mutex
	cases  map[string]bool
}

func (c *collector) Observe(feedID string, points []feed.Point) {
	c.mu.Lock()
	isCase := c.cases[feedID]
	c.mu.Unlock()
	if !isCase {
		c.engine.Collect(feedID, points)
	}
}

func (c *collector) setCases(feeds []*feed.Feed) {
	cases := map[string]bool{}
	for _, f := range feeds {
		if f.Spec().Cases != nil {
			cases[f.ID()] = true
		}
	}
	c.mu.Lock()
	c.cases = cases
	c.mu.Unlock()
}

// caseFeeds are the case feeds among feeds.
func caseFeeds(feeds []*feed.Feed) []*feed.Feed {
	var out []*feed.Feed
	for _, f := range feeds {
		if f.Spec().Cases != nil {
			out = append(out, f)
		}
	}
	return out
}

// publishPartials sends what the collector took, every interval, until
// ctx ends (and once more then).
func (a *App) publishPartials(ctx context.Context, interval time.Duration) {
	run := fmt.Sprintf("%s/%d", a.cfg.Cluster.Instance, time.Now().UnixNano())
	var seq uint64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		stop := false
		select {
		case <-ctx.Done():
			stop = true
		case <-t.C:
		}
		if ds := a.collector.engine.TakeDeltas(); len(ds) > 0 {
			seq++
			b, err := json.Marshal(partialBatch{Run: run, Seq: seq, Published: time.Now().UTC(), Deltas: ds})
			if err == nil {
				err = a.control.store.Send(partialsTopic, b)
			}
			if err != nil {
				a.log.Warn("partials not published", "err", err)
			}
			a.partialsSent.Add(float64(len(ds)))
		}
		if stop {
			return
		}
	}
}

// partialLateness is how late (after its time) a reading stamped before
// a starting screens instance's cut may arrive and still be counted: the
// fill waits this long before reading InfluxDB.
const partialLateness = 5 * time.Second

// partialGate merges the partials an instance that serves screens
// receives, holding them while its panels are filled from InfluxDB. The
// readings stamped before the cut come from InfluxDB, read once those
// that arrive up to partialLateness late are stored; the partials give
// only their deltas from the cut on. Readings are stamped no later than
// their receipt (panel.Engine.Collect), so one from the cut on was
// received, and published, after this instance subscribed: none is
// missed and none counted twice, but for a reading stamped before the
// cut that arrives later than partialLateness, which this instance does
// not count.
type partialGate struct {
	engine *panel.Engine
	merged prometheus.Counter
	left   prometheus.Counter

	mu           sync.Mutex
	open         bool
	held         []partialBatch
	cut          time.Time
	last         map[string]uint64 // by run: the newest batch merged, so a batch given twice counts once
	subscribedAt time.Time
}

func newPartialGate(e *panel.Engine, reg prometheus.Registerer) *partialGate {
	g := &partialGate{engine: e, last: map[string]uint64{},
		merged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_partials_merged_total", Help: "Partial aggregates merged into the panels.",
		}),
		left: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_partials_left_out_total", Help: "Partial aggregates left out: for a panel not here or defined otherwise here, or undecodable.",
		}),
	}
	reg.MustRegister(g.merged, g.left)
	return g
}

// take is the cluster's listener: one storing instance's batch.
func (g *partialGate) take(_ string, payload []byte) {
	var b partialBatch
	if err := json.Unmarshal(payload, &b); err != nil {
		g.left.Inc()
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b.Seq <= g.last[b.Run] {
		return // given again by the broker
	}
	g.last[b.Run] = b.Seq
	if !g.open {
		g.held = append(g.held, b)
		return
	}
	g.mergeLocked(b)
}

func (g *partialGate) mergeLocked(b partialBatch) {
	cut := g.cut.UnixNano()
	ds := b.Deltas[:0]
	for _, d := range b.Deltas {
		if d.Slot >= cut {
			ds = append(ds, d)
		}
	}
	left := g.engine.Merge(ds, false)
	g.merged.Add(float64(len(ds) - left))
	g.left.Add(float64(left))
}

// subscribed notes when the partials were subscribed, and says from when
// the fill should leave readings to them: the second after the next.
func (g *partialGate) subscribed(at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.subscribedAt.IsZero() {
		g.subscribedAt = at
		g.cut = at.Truncate(time.Second).Add(2 * time.Second)
	}
}

// Cut is the time from which readings come from partials, not InfluxDB.
func (g *partialGate) Cut() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cut
}

// Open merges what was held and everything from then on.
func (g *partialGate) Open() (held int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.held {
		g.mergeLocked(b)
		held += len(b.Deltas)
	}
	g.open, g.held = true, nil
	return held
}
