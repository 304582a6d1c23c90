package alert

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type stored struct {
	mu     sync.Mutex
	points []feed.Point
}

func (s *stored) store(pts []feed.Point, done func(error)) {
	s.mu.Lock()
	s.points = append(s.points, pts...)
	s.mu.Unlock()
	done(nil)
}

func (s *stored) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.points {
		v, _ := p.Field("event")
		out = append(out, v.StringV())
	}
	return out
}

func x(v float64) *float64 { return &v }

func TestLifecycle(t *testing.T) {
	st := &stored{}
	m := New(st.store, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { m.Run(stop); close(done) }()
	var touched []string
	m.SetTouch(func(screen, panel string) { touched = append(touched, screen+"/"+panel) })
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	key := "wall/heat{district=daoli}"
	ev := func(status panel.Status, v float64) {
		m.Alert(panel.Event{Key: key, Screen: "wall", Panel: "heat", Tags: map[string]string{"district": "daoli"}, Status: status, Value: x(v), Time: at})
		at = at.Add(time.Minute)
	}
	ev(panel.StatusWarn, 80)
	mark := m.Mark(key)
	if mark == nil || mark.Status != panel.StatusWarn {
		t.Fatalf("mark %+v", mark)
	}
	if _, err := m.Ack(mark.ID, "user:li.wei", "li.wei", ""); err != nil {
		t.Fatal(err)
	}
	if got := m.Mark(key); got.AckedBy != "user:li.wei" || len(touched) != 1 {
		t.Fatalf("after ack: %+v, touched %v", got, touched)
	}
	ev(panel.StatusCrit, 120) // worse: to be acknowledged again
	if got := m.Mark(key); got.AckedBy != "" || got.ID != mark.ID || !got.Since.Equal(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("after escalation: %+v", got)
	}
	ev(panel.StatusOK, 50)
	if m.Mark(key) != nil {
		t.Fatal("still active after clearing")
	}
	if _, err := m.Ack(mark.ID, "x", "x", ""); err != ErrNotFound {
		t.Fatalf("ack of a cleared alert: %v", err)
	}
	list := m.List()
	if len(list) != 1 || list[0].Cleared == nil || *list[0].Value != 50 {
		t.Fatalf("list %+v", list)
	}
	// A panel that is gone takes its alert with it.
	m.Alert(panel.Event{Key: "old/p", Screen: "old", Panel: "p", Status: panel.StatusStale, Time: at})
	m.Retain(func(screen, _ string) bool { return screen != "old" })
	if m.Mark("old/p") != nil {
		t.Fatal("the alert of a removed panel stays")
	}
	close(stop)
	<-done
	if got := st.events(); len(got) != 6 || got[0] != "raise" || got[1] != "ack" || got[2] != "change" || got[3] != "clear" || got[4] != "raise" || got[5] != "clear" {
		t.Fatalf("stored events %v", got)
	}
}

// TestEscalationAndAssignment: an alert not acknowledged within the time
// allowed escalates once (marked, recorded, told); one acknowledged in
// time does not; an assignment and an acknowledgement's comment show in
// the list and the mark, and are told.
func TestEscalationAndAssignment(t *testing.T) {
	st := &stored{}
	m := New(st.store, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	now := t0
	m.now = func() time.Time { return now }
	var told []string
	m.SetNotify(func(a Alert, kind string) { told = append(told, a.Panel+":"+kind) })
	m.SetEscalation(10 * time.Minute)
	for _, p := range []string{"late", "seen"} {
		m.Alert(panel.Event{Key: p, Screen: "wall", Panel: p, Status: panel.StatusCrit, Value: x(1), Time: t0})
	}
	if _, err := m.Ack(m.Mark("seen").ID, "user:li.wei", "李伟", "去现场查看"); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(9 * time.Minute)
	m.escalate()
	if m.Mark("late").Escalated {
		t.Fatal("escalated before its time")
	}
	now = t0.Add(10 * time.Minute)
	m.escalate()
	m.escalate()
	if !m.Mark("late").Escalated || m.Mark("seen").Escalated {
		t.Fatalf("late %+v, seen %+v", m.Mark("late"), m.Mark("seen"))
	}
	if _, err := m.Assign(m.Mark("late").ID, "住建局", "李伟"); err != nil {
		t.Fatal(err)
	}
	var late, seen Alert
	for _, a := range m.List() {
		switch a.Panel {
		case "late":
			late = a
		case "seen":
			seen = a
		}
	}
	if late.Escalated == nil || !late.Escalated.Equal(now) || late.Assignee != "住建局" || late.AssignedBy != "李伟" || m.Mark("late").Assignee != "住建局" {
		t.Errorf("the late alert: %+v", late)
	}
	if seen.AckComment != "去现场查看" || seen.Escalated != nil {
		t.Errorf("the acknowledged alert: %+v", seen)
	}
	if got := strings.Join(told, " "); got != "late:raise seen:raise seen:ack late:escalate late:assign" {
		t.Errorf("told %s", got)
	}
	if _, err := m.Assign("nope", "x", "y"); err != ErrNotFound {
		t.Errorf("assigning no alert: %v", err)
	}
}
