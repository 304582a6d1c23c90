package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/panel"
)

// frameText is a frame's type, seq and panels, as "update 3 a=1 b=2"; a
// panel with a trend shows it as "n=[3 4]" and its step in progress as
// "n=+4".
func frameText(f Frame) string {
	parts := []string{f.Type, fmt.Sprint(f.Seq)}
	for _, v := range f.Panels {
		switch {
		case v.History != nil:
			var vs []string
			for _, p := range v.History {
				vs = append(vs, fmt.Sprint(p.V))
			}
			parts = append(parts, v.ID+"=["+strings.Join(vs, " ")+"]")
		case v.HistoryNow != nil:
			parts = append(parts, fmt.Sprintf("%s=+%v", v.ID, v.HistoryNow.V))
		case v.Value != nil:
			parts = append(parts, fmt.Sprintf("%s=%v", v.ID, *v.Value))
		default:
			parts = append(parts, v.ID)
		}
	}
	return strings.Join(parts, " ")
}

// TestTurns: each turn's clients get, at their turn, what was published
// since their last frame, merged into one frame in the screen's order and
// numbered in the turn's own sequence; a trend that moved on since goes
// whole. A client joins the turn with the fewest clients.
func TestTurns(t *testing.T) {
	h, srv := newHub(t, Options{})
	at := func(min int) time.Time { return time.Date(2026, 12, 5, 8, min, 0, 0, time.UTC) }
	h.AddScreen("wall", nil, []panel.View{{ID: "a"}, {ID: "b"}, {ID: "n", History: []panel.HistPoint{{T: at(0), V: 3}}}})
	var reads [panel.Turns]func() string
	for i := range panel.Turns {
		c := dial(t, srv, "wall", nil)
		// Its snapshot is queued as it joins: the next client joins after.
		if f := readFrame(t, c); f.Type != "snapshot" || f.Seq != 0 {
			t.Fatalf("client %d: snapshot %s", i, frameText(f))
		}
		reads[i] = func() string { return frameText(readFrame(t, c)) }
	}
	for i := range panel.Turns {
		if n := len(h.screens["wall"].turns[i].clients); n != 1 {
			t.Fatalf("turn %d has %d clients, want 1 each", i, n)
		}
	}
	h.Publish("wall", []panel.View{{ID: "a", Value: fl(1)}})
	h.Turn(0)
	h.Publish("wall", []panel.View{{ID: "b", Value: fl(2)}, {ID: "n", HistoryNow: &panel.HistPoint{T: at(0), V: 4}}})
	h.Turn(1)
	h.Publish("wall", []panel.View{{ID: "a", Value: fl(3)}, {ID: "n", History: []panel.HistPoint{{T: at(0), V: 4}, {T: at(10), V: 5}}}})
	h.Turn(2)
	h.Publish("wall", []panel.View{{ID: "n", HistoryNow: &panel.HistPoint{T: at(10), V: 6}}})
	h.Turn(3)
	h.Publish("wall", []panel.View{{ID: "b", Value: fl(7)}})
	h.Turn(-1) // a leading edge: every turn
	want := [panel.Turns][]string{
		{"update 1 a=1", "update 2 a=3 b=7 n=[4 6]"},
		{"update 1 a=1 b=2 n=+4", "update 2 a=3 b=7 n=[4 6]"},
		{"update 1 a=3 b=2 n=[4 5]", "update 2 b=7 n=+6"},
		{"update 1 a=3 b=2 n=[4 6]", "update 2 b=7"},
	}
	for i := range panel.Turns {
		for j, w := range want[i] {
			if got := reads[i](); got != w {
				t.Errorf("turn %d, frame %d: %q, want %q", i, j+1, got, w)
			}
		}
	}
	// A client that joins now takes the snapshot in its turn's sequence,
	// and that turn's next frame.
	late := dial(t, srv, "wall", nil)
	if got := frameText(readFrame(t, late)); got != "snapshot 2 a=3 b=7 n=[4 6]" {
		t.Fatalf("late snapshot: %q", got)
	}
	h.Publish("wall", []panel.View{{ID: "a", Value: fl(8)}})
	h.Turn(0)
	if got, w := frameText(readFrame(t, late)), "update 3 a=8"; got != w {
		t.Fatalf("late client's update: %q, want %q", got, w)
	}
	if got, w := reads[0](), "update 3 a=8"; got != w {
		t.Fatalf("turn 0's update: %q, want %q", got, w)
	}
}
