// Package hub pushes screens to websocket clients.
//
// The hub keeps each screen's latest panel views. A client that connects
// gets a snapshot of the whole screen, then, at its turn (turn.go),
// updates that carry only the panels that changed since its last frame,
// in its turn's sequence. Each frame is encoded once, as the websocket
// frame itself, and shared by every client of the screen in that turn.
// Every client has a bounded queue. A few fan-out workers a
// frame write it to the clients without blocking; a client whose socket is
// full is finished by its own writer goroutine with a write deadline (see
// write.go). A client whose queue is full, or whose write passes the
// deadline, is dropped as slow (and counted), so that one slow reader never
// holds up the others; its page reconnects and resumes from a fresh
// snapshot. All methods are safe for concurrent use.
package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cityscreen/cityscreen/internal/panel"
)

// Options tune a Hub. The zero value is usable.
type Options struct {
	// ClientQueue is how many frames may wait for one client; 0 means 64.
	ClientQueue int
	// WriteTimeout bounds one frame's write; 0 means 10s.
	WriteTimeout time.Duration
	// PingInterval between pings; a client silent for two is dropped. 0
	// means 20s.
	PingInterval time.Duration
	// ReadLimit is the largest message a client may send; 0 means 4096.
	ReadLimit int64
	// MessageRate is how many messages a second a client may send (it
	// need send none); beyond it the connection is closed. 0 means 5.
	MessageRate int
	// AllowedOrigins may connect besides the server's own origin, exactly.
	AllowedOrigins []string
	// PublicOrigin, when set, is the server's own origin, whatever Host a
	// request names.
	PublicOrigin string
}

// ErrClosed is returned once the hub has been shut down.
var ErrClosed = errors.New("hub: closed")

// Frame is a message to a screen (the websocket protocol's frames, and the
// answer of GET /api/screens/{id}).
type Frame struct {
	Type   string       `json:"type"` // snapshot or update
	Screen string       `json:"screen"`
	Seq    uint64       `json:"seq"`
	Panels []panel.View `json:"panels"`
	// Meta, in snapshots only, is what the pages need beyond the panels:
	// titles and labels by language, the map, the layout.
	Meta *panel.ScreenMeta `json:"meta,omitempty"`
}

// Hub fans screens out to websocket clients.
type Hub struct {
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu      sync.Mutex
	screens map[string]*screen
	closed  bool
	wg      sync.WaitGroup // writer goroutines

	clients   prometheus.Gauge
	slowDrops prometheus.Counter
	frames    *prometheus.CounterVec
}

type screen struct {
	id    string
	meta  *panel.ScreenMeta
	order []string // panel IDs in the screen's order
	views map[string]panel.View
	seq   uint64 // publications, for Snapshot
	turns [panel.Turns]turn
}

// clients is every client of the screen, in any turn.
func (s *screen) clients() iter.Seq[*client] {
	return func(yield func(*client) bool) {
		for i := range s.turns {
			for c := range s.turns[i].clients {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// connected reports whether the screen has any client.
func (s *screen) connected() bool {
	for i := range s.turns {
		if len(s.turns[i].clients) > 0 {
			return true
		}
	}
	return false
}

// The defaults of Options, which the configuration's hub settings share.
const (
	DefaultClientQueue  = 64
	DefaultWriteTimeout = 10 * time.Second
	DefaultPingInterval = 20 * time.Second
	DefaultReadLimit    = 4096
)

// New returns a hub with no screens.
func New(log *slog.Logger, reg prometheus.Registerer, opts Options) *Hub {
	opts.ClientQueue = cmp.Or(opts.ClientQueue, DefaultClientQueue)
	opts.WriteTimeout = cmp.Or(opts.WriteTimeout, DefaultWriteTimeout)
	opts.PingInterval = cmp.Or(opts.PingInterval, DefaultPingInterval)
	opts.ReadLimit = cmp.Or(opts.ReadLimit, DefaultReadLimit)
	opts.MessageRate = cmp.Or(opts.MessageRate, 5)
	h := &Hub{
		opts:    opts,
		log:     log.With("component", "hub"),
		screens: map[string]*screen{},
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cityscreen_ws_clients", Help: "Websocket clients connected.",
		}),
		slowDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_ws_slow_drops_total", Help: "Websocket clients dropped as too slow: their queue was full, or a frame's write timed out.",
		}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_ws_frames_total", Help: "Frames encoded for screens, by type (each shared by all its clients).",
		}, []string{"type"}),
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout:  10 * time.Second,
		CheckOrigin:       h.checkOrigin,
		EnableCompression: false,
		// Memory per client: clients send next to nothing, so a small read
		// buffer; write buffers are pooled and held only while a frame is
		// written, not for the life of each of thousands of connections.
		ReadBufferSize:  512,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
	}
	if reg != nil {
		reg.MustRegister(h.clients, h.slowDrops, h.frames)
	}
	return h
}

// AddScreen makes a screen available with its meta and its panels' first
// views, in order. If the screen exists, its panels are replaced and its
// clients get a new snapshot.
func (h *Hub) AddScreen(id string, meta *panel.ScreenMeta, views []panel.View) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.screens[id]
	if s == nil {
		s = &screen{id: id}
		h.screens[id] = s
	}
	s.meta = meta
	s.order, s.views = nil, map[string]panel.View{}
	for _, v := range views {
		s.order = append(s.order, v.ID)
		s.views[v.ID] = v
	}
	// Every turn starts again from this snapshot.
	connected := s.connected()
	if connected {
		s.seq++
	}
	for i := range s.turns {
		s.turns[i].restart(s.seq)
	}
	if !connected {
		return
	}
	pm, err := h.prepare(s.snapshot())
	if err != nil {
		h.log.Error("encoding snapshot", "screen", id, "err", err)
		return
	}
	h.dispatch(h.sendLocked(s, pm, -1, nil))
}

// Meta is a screen's meta as last added, nil for none or no such screen.
func (h *Hub) Meta(id string) *panel.ScreenMeta {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.screens[id]; s != nil {
		return s.meta
	}
	return nil
}

// RemoveScreen retires a screen; its clients are closed (1001).
func (h *Hub) RemoveScreen(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.screens[id]
	if s == nil {
		return
	}
	delete(h.screens, id)
	for c := range s.clients() {
		h.removeLocked(s, c)
		c.stop(websocket.CloseGoingAway, "screen removed")
	}
}

// Publish records changed views of a screen for its clients' next turn
// (Turn). It never waits for a client.
func (h *Hub) Publish(screenID string, views []panel.View) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.screens[screenID]
	if s == nil || h.closed {
		return
	}
	for _, v := range views {
		for i := range s.turns {
			s.turns[i].pend(v)
		}
		if v.History == nil {
			// Updates carry a trend only when it moves on, and otherwise
			// its step in progress.
			v.History = withPoint(s.views[v.ID].History, v.HistoryNow)
			v.HistoryNow = nil
		}
		s.views[v.ID] = v
	}
	s.seq++
}

// withPoint is a trend with its step in progress at p: the last point
// replaced when it is of the same step, else p after it. The trend given is
// not changed (snapshots already taken share it).
func withPoint(trend []panel.HistPoint, p *panel.HistPoint) []panel.HistPoint {
	if p == nil {
		return trend
	}
	n := len(trend)
	if n > 0 && trend[n-1].T.Equal(p.T) {
		n--
	}
	return append(trend[:n:n], *p)
}

// sendLocked queues a frame for the clients of a screen in turn t (every
// client for a negative t), dropping those whose queue is full, and
// appends those that were idle, for the fan-out workers, to idle.
func (h *Hub) sendLocked(s *screen, b []byte, t int, idle []*client) []*client {
	for i := range s.turns {
		if t >= 0 && i != t {
			continue
		}
		for c := range s.turns[i].clients {
			toWorker, ok := c.enqueue(b, h.opts.ClientQueue, true)
			switch {
			case !ok:
				h.slowDrops.Inc()
				h.log.Warn("dropping slow websocket client", "screen", s.id, "client", c.nc.RemoteAddr().String())
				h.removeLocked(s, c)
				c.stop(websocket.CloseTryAgainLater, "too slow: reconnect")
			case toWorker:
				idle = append(idle, c)
			}
		}
	}
	return idle
}

// Snapshot returns the whole screen as a snapshot frame, and false if there
// is no such screen.
func (h *Hub) Snapshot(screenID string) (Frame, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.screens[screenID]
	if s == nil {
		return Frame{}, false
	}
	return s.snapshot(), true
}

func (s *screen) snapshot() Frame {
	f := Frame{Type: "snapshot", Screen: s.id, Seq: s.seq, Panels: make([]panel.View, 0, len(s.order)), Meta: s.meta}
	for _, id := range s.order {
		f.Panels = append(f.Panels, s.views[id])
	}
	return f
}

// prepare encodes a frame once, as the websocket frame every client of
// the screen is sent.
func (h *Hub) prepare(f Frame) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	h.frames.WithLabelValues(f.Type).Inc()
	return encode(websocket.TextMessage, b), nil
}

// CloseRevoked is the close code sent when the client's credentials were
// revoked or its user signed out.
const CloseRevoked = 4001

// ServeWS upgrades GET /ws?screen=ID and serves the screen until the client
// goes away, is too slow, or the hub shuts down.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request) { h.ServeWSUntil(w, r, nil, "", nil) }

// ServeWSUntil is ServeWS that also ends, with close code CloseRevoked,
// when revoked is closed. tag names the client (a display's token ID) for
// Reload and Connected. It returns once the websocket is set up (or
// refused); the client is then served by a reader and a writer goroutine
// of its own, so that the HTTP handler's goroutine, whose stack grew while
// the request went through the routes, is not kept for the connection's
// life. ended, when not nil, is called once the client is gone (or was
// never taken).
func (h *Hub) ServeWSUntil(w http.ResponseWriter, r *http.Request, revoked <-chan struct{}, tag string, ended func()) {
	if ended == nil {
		ended = func() {}
	}
	id := r.URL.Query().Get("screen")
	h.mu.Lock()
	_, ok := h.screens[id]
	closed := h.closed
	h.mu.Unlock()
	switch {
	case closed:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		ended()
		return
	case !ok:
		http.Error(w, "no such screen: "+id, http.StatusNotFound)
		ended()
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		ended()
		return // the upgrader has answered
	}
	c := newClient(conn, tag, id, revoked, h.opts.ClientQueue)
	if err := h.register(id, c); err != nil {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"), time.Now().Add(time.Second))
		conn.Close()
		ended()
		return
	}
	go func() {
		defer h.wg.Done()
		defer ended()
		err := h.read(c)
		code, reason := websocket.CloseNormalClosure, ""
		switch {
		case errors.Is(err, websocket.ErrReadLimit):
			code, reason = websocket.CloseMessageTooBig, "message too big"
		case errors.Is(err, errTooChatty):
			code, reason = websocket.ClosePolicyViolation, "too many messages"
		}
		h.unregister(id, c, code, reason)
	}()
}

// register queues the snapshot and adds the client under one lock, so that
// it sees every update after its snapshot and none before.
func (h *Hub) register(id string, c *client) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.screens[id]
	if h.closed || s == nil {
		return ErrClosed
	}
	// The client takes the turn with the fewest clients, and the turn's
	// sequence: its next frame is the turn's next.
	c.turn = h.quietestTurnLocked()
	snap := s.snapshot()
	snap.Seq = s.turns[c.turn].seq
	pm, err := h.prepare(snap)
	if err != nil {
		return err
	}
	c.enqueue(pm, 0, false) // beyond the bound, for its writer
	s.turns[c.turn].add(c)
	h.clients.Inc()
	h.wg.Add(2) // the writer, and the reader ServeWSUntil starts
	go h.write(c)
	return nil
}

func (h *Hub) unregister(id string, c *client, code int, reason string) {
	h.mu.Lock()
	if s := h.screens[id]; s != nil {
		h.removeLocked(s, c)
	}
	h.mu.Unlock()
	c.stop(code, reason)
}

func (h *Hub) removeLocked(s *screen, c *client) {
	if s.turns[c.turn].remove(c) {
		h.clients.Dec()
	}
}

var errTooChatty = errors.New("hub: the client sends too many messages")

// read discards what the client sends (the protocol is one-way), at most
// MessageRate messages a second, and keeps the connection's deadline
// moving with its pongs: a client silent for two ping intervals is idle
// and dropped. It returns why reading ended.
func (h *Hub) read(c *client) error {
	c.conn.SetReadLimit(h.opts.ReadLimit)
	wait := 2 * h.opts.PingInterval
	c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wait)) })
	lim := rate.NewLimiter(rate.Limit(h.opts.MessageRate), 2*h.opts.MessageRate)
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return err
		}
		if !lim.Allow() {
			return errTooChatty
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
	}
}

// Shutdown closes every websocket with a close frame (1001, going away),
// refuses new ones, and waits for the writers to finish or ctx to end. It
// may be called more than once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	for _, s := range h.screens {
		for c := range s.clients() {
			h.removeLocked(s, c)
			c.stop(websocket.CloseGoingAway, "server shutting down")
		}
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkOrigin accepts clients without an Origin (not browsers), and the
// origins OriginAllowed allows.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || OriginAllowed(origin, r, h.opts.PublicOrigin, h.opts.AllowedOrigins)
}

// OriginAllowed reports whether a browser's Origin may act on the server:
// one of allowed, or the public origin when one is set (whatever Host the
// request names: a name rebound to the server's address does not pass),
// else the request's own scheme and Host; each compared exactly.
func OriginAllowed(origin string, r *http.Request, public string, allowed []string) bool {
	for _, o := range allowed {
		if origin == o {
			return true
		}
	}
	if public != "" {
		return origin == public
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host) && u.Path == "" && u.User == nil
}

// Connected counts the open clients with a tag.
func (h *Hub) Connected(tag string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.screens {
		for c := range s.clients() {
			if c.tag == tag {
				n++
			}
		}
	}
	return n
}

// Reload tells the clients with a tag to reload their page (a frame of
// type "reload"), and returns how many it told.
func (h *Hub) Reload(tag string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.screens {
		pm, err := h.prepare(Frame{Type: "reload", Screen: s.id, Seq: s.seq, Panels: []panel.View{}})
		if err != nil {
			continue
		}
		for c := range s.clients() {
			if c.tag != tag {
				continue
			}
			if _, ok := c.enqueue(pm, h.opts.ClientQueue, false); !ok {
				continue // too slow: it is dropped on the next frame anyway
			}
			n++
		}
	}
	return n
}
