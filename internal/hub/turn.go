package hub

import "github.com/cityscreen/cityscreen/internal/panel"

// Turns.
//
// A screen's clients are spread over panel.Turns turns, and the engine
// ends each publication with one turn (Turn): every turn is sent once an
// interval, an interval divided by panel.Turns after the one before. A
// frame's writes to 1,000 clients then go out as four bursts of 250 over
// the interval, not one of 1,000 whose last write comes tens of
// milliseconds after its first on a machine's two cores: a reading waits at most the
// interval for its client's turn, as it waited for the one tick, and
// then its place in a quarter of the writes. Each turn keeps what was
// published since its last frame and its own sequence of frames, so a
// client sees consecutive seqs whichever turn it is in. A leading edge
// (Turn(-1)) sends every turn at once.

// turn is the clients of one turn of a screen, what they were last sent
// and what is pending for them.
type turn struct {
	clients map[*client]struct{}
	seq     uint64 // of the turn's last frame (or of the snapshot it follows)
	pending map[string]pendingView
}

type pendingView struct {
	v panel.View // as last published: a trend only when it moved on
	// moved: a publication since the turn's last frame moved the trend
	// on, so the frame carries all of it.
	moved bool
}

func (t *turn) add(c *client) {
	if t.clients == nil {
		t.clients = map[*client]struct{}{}
	}
	t.clients[c] = struct{}{}
}

func (t *turn) remove(c *client) bool {
	if _, ok := t.clients[c]; !ok {
		return false
	}
	delete(t.clients, c)
	return true
}

// restart has the turn follow a snapshot of sequence seq, with nothing
// pending.
func (t *turn) restart(seq uint64) {
	t.seq = seq
	clear(t.pending)
}

// pend records a published view for the turn's next frame.
func (t *turn) pend(v panel.View) {
	if t.pending == nil {
		t.pending = map[string]pendingView{}
	}
	t.pending[v.ID] = pendingView{v: v, moved: t.pending[v.ID].moved || v.History != nil}
}

// quietestTurnLocked is the turn with the fewest clients over all screens,
// the first of those with as few.
func (h *Hub) quietestTurnLocked() int {
	var n [panel.Turns]int
	for _, s := range h.screens {
		for t := range s.turns {
			n[t] += len(s.turns[t].clients)
		}
	}
	fewest := 0
	for t := range n {
		if n[t] < n[fewest] {
			fewest = t
		}
	}
	return fewest
}

// Turn sends the clients of turn i (0 to panel.Turns-1), or every client
// when i is negative, what was published for their screen since their
// last frame, as one update frame a screen. It never waits for a client.
func (h *Hub) Turn(i int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	var idle []*client
	for _, s := range h.screens {
		for t := range s.turns {
			if i < 0 || t == i {
				idle = h.sendTurnLocked(s, t, idle)
			}
		}
	}
	h.dispatch(idle)
}

// sendTurnLocked queues turn t's pending changes of a screen, as one
// frame, for its clients, and appends those a fan-out worker is to write
// to idle.
func (h *Hub) sendTurnLocked(s *screen, t int, idle []*client) []*client {
	tn := &s.turns[t]
	if len(tn.clients) == 0 {
		clear(tn.pending) // a client that joins takes a snapshot
		return idle
	}
	if len(tn.pending) == 0 {
		return idle
	}
	views := make([]panel.View, 0, len(tn.pending))
	for _, id := range s.order {
		p, ok := tn.pending[id]
		if !ok {
			continue
		}
		if p.moved {
			p.v.History, p.v.HistoryNow = s.views[id].History, nil
		}
		views = append(views, p.v)
	}
	clear(tn.pending)
	tn.seq++
	pm, err := h.prepare(Frame{Type: "update", Screen: s.id, Seq: tn.seq, Panels: views})
	if err != nil {
		h.log.Error("encoding update", "screen", s.id, "err", err)
		return idle
	}
	return h.sendLocked(s, pm, t, idle)
}
