package main

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Departments that take each category of request (派单 goes to them).
var departmentOf = map[string]string{
	"heating": "heating-office", "snow-ice": "urban-management", "traffic": "transport-bureau",
	"environment": "ecology-bureau", "housing": "housing-bureau", "water-power": "water-bureau",
	"social-security": "hr-social-security", "market": "market-regulation",
}

// caseLimit is a request's time limit in the demo, as the demo case feed
// (config/feeds/citizen-cases.yaml) configures it: minutes, not the days
// of the provincial rules, so that lives pass while one watches.
func caseLimit(category string, urgent bool) time.Duration {
	switch {
	case urgent:
		return 30 * time.Minute
	case category == "heating" || category == "snow-ice":
		return time.Hour
	}
	return 2 * time.Hour
}

// caseSim plays citizens' requests through their lives: received (受理),
// dispatched (派单), signed for (签收), answered, visited back (回访) with
// a satisfaction score, closed (办结); about one in ten answered late, one
// in twenty-five reopened. Each call publishes the next event that is due,
// or opens a new request when none is: so arrivals follow the rate.
type caseSim struct {
	mu    sync.Mutex
	next  int
	queue caseQueue
}

var demoCases = &caseSim{}

type caseEvent struct {
	at     time.Time
	id     string
	status string
	extra  string // more JSON members
	req    *request
}

// request is what every event of one request repeats.
type request struct {
	channel, district, category, urgency, caller string
}

type caseQueue []caseEvent

func (q caseQueue) Len() int           { return len(q) }
func (q caseQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q caseQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *caseQueue) Push(x any)        { *q = append(*q, x.(caseEvent)) }
func (q *caseQueue) Pop() any          { old := *q; e := old[len(old)-1]; *q = old[:len(old)-1]; return e }
func minutes(lo, hi float64, r *rand.Rand) time.Duration {
	return time.Duration((lo + r.Float64()*(hi-lo)) * float64(time.Minute))
}

func (s *caseSim) make(r *rand.Rand, t time.Time) message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 && (t.Sub(s.queue[0].at) > time.Hour || s.queue[0].at.Sub(t) > 24*time.Hour) {
		s.queue = nil // the clock jumped (a test, a suspended machine): start afresh
	}
	if len(s.queue) > 0 && !s.queue[0].at.After(t) {
		return heap.Pop(&s.queue).(caseEvent).message()
	}
	return s.open(r, t).message()
}

// open opens a new request at t and schedules the rest of its life.
func (s *caseSim) open(r *rand.Rand, t time.Time) caseEvent {
	s.next++
	d := pickDistrict(r)
	req := &request{channel: "12345", district: d.name, category: pickWeighted(r, categories, categoryWeight), urgency: "normal",
		caller: fmt.Sprintf(`{"phone":"1%d%09d","name":%q}`, 30+r.IntN(70), r.IntN(1e9), pick(r, surnames)+pick(r, givenNames))}
	if r.IntN(5) < 2 {
		req.channel = "eicecity"
	}
	if r.IntN(10) == 0 {
		req.urgency = "urgent"
	}
	id := fmt.Sprintf("HRB%s%07d", t.In(shanghai).Format("0102"), s.next%10_000_000)
	limit := caseLimit(req.category, req.urgency == "urgent")
	s.life(r, id, req, t, limit)
	return caseEvent{at: t, id: id, status: "received", req: req}
}

// history opens n requests over the two hours before now and returns
// their events up to now, oldest first; the rest of their lives follow
// with the live events. Published at start, it gives the screens requests
// closed (on time or late), open and overdue at once, instead of after
// the half hour the first lives take.
func (s *caseSim) history(r *rand.Rand, now time.Time, n int) []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		heap.Push(&s.queue, s.open(r, now.Add(-time.Duration(r.Int64N(int64(2*time.Hour))))))
	}
	var out []message
	for len(s.queue) > 0 && !s.queue[0].at.After(now) {
		out = append(out, heap.Pop(&s.queue).(caseEvent).message())
	}
	return out
}

// life schedules a request's events after its opening (or reopening) at t.
func (s *caseSim) life(r *rand.Rand, id string, req *request, t time.Time, limit time.Duration) {
	push := func(at time.Time, status, extra string) {
		heap.Push(&s.queue, caseEvent{at: at, id: id, status: status, extra: extra, req: req})
	}
	dispatched := t.Add(minutes(0.5, 3, r))
	signed := dispatched.Add(minutes(0.5, 5, r))
	// Answered within about a third of the limit on average; one in ten late.
	answered := t.Add(time.Duration((0.2 + r.ExpFloat64()*0.35) * float64(limit)))
	if answered.Before(signed) {
		answered = signed.Add(time.Minute)
	}
	late := answered.Sub(t) > limit
	visited := answered.Add(minutes(2, 10, r))
	sat := int(clamp(4.6+r.NormFloat64()*0.5, 1, 5))
	if late {
		sat = int(clamp(3+r.NormFloat64(), 1, 5))
	}
	closed := visited.Add(30 * time.Second)
	push(dispatched, "dispatched", "")
	push(signed, "signed", "")
	push(answered, "answered", "")
	push(visited, "visited", fmt.Sprintf(`,"satisfaction":%d`, sat))
	push(closed, "closed", "")
	if r.IntN(25) == 0 { // not satisfied: reopened, and its life again
		reopened := closed.Add(minutes(5, 15, r))
		push(reopened, "reopened", "")
		s.life(r, id, req, reopened, limit)
	}
}

func (e caseEvent) message() message {
	return message{
		topic: fmt.Sprintf("harbin/citizen/cases/%s/%s", e.req.channel, e.req.district),
		payload: fmt.Appendf(nil, `{"id":%q,"status":%q,"time":%q,"category":%q,"department":%q,"urgency":%q,"caller":%s%s}`,
			e.id, e.status, e.at.In(shanghai).Format(time.RFC3339Nano), e.req.category, departmentOf[e.req.category], e.req.urgency, e.req.caller, e.extra),
	}
}
