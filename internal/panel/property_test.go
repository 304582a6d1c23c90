package panel

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// raw is a reading as the reference recomputation sees it.
type raw struct {
	t        time.Time
	district string
	channel  string
	x        float64
	resolved bool
}

// reference computes a panel's value from the raw readings it kept, from
// scratch: the readings in the window as the engine defines it (the
// sliding window's 60 buckets ending at now's bucket, or the calendar
// period holding now).
func reference(spec Spec, kept []raw, now time.Time, loc *time.Location) (float64, bool) {
	width := max(int64(spec.Window)/buckets, 1)
	var in []raw
	for _, r := range kept {
		t := r.t.UnixNano()
		switch {
		case spec.Calendar != "":
			if periodStart(t, spec.Calendar, loc) != periodStart(now.UnixNano(), spec.Calendar, loc) {
				continue
			}
		case spec.Agg == AggDistinct:
			if t <= now.UnixNano()-int64(spec.Window) {
				continue
			}
		default:
			if t/width <= now.UnixNano()/width-buckets || t/width > now.UnixNano()/width {
				continue
			}
		}
		in = append(in, r)
	}
	if len(in) == 0 {
		return 0, false
	}
	xs := make([]float64, len(in))
	sum, hits := 0.0, 0.0
	districts := map[string]bool{}
	lastT := time.Time{}
	last := 0.0
	for i, r := range in {
		xs[i] = r.x
		sum += r.x
		if r.resolved {
			hits++
		}
		districts[r.district] = true
		if !r.t.Before(lastT) {
			lastT, last = r.t, r.x
		}
	}
	sort.Float64s(xs)
	span := spec.Window.Seconds()
	if spec.Calendar != "" {
		span = float64(now.UnixNano()-periodStart(now.UnixNano(), spec.Calendar, loc)) / 1e9
	}
	switch spec.Agg {
	case AggCount:
		return float64(len(in)), true
	case AggSum:
		return sum, true
	case AggMean:
		return sum / float64(len(in)), true
	case AggMin:
		return xs[0], true
	case AggMax:
		return xs[len(xs)-1], true
	case AggLast:
		return last, true
	case AggRate:
		return float64(len(in)) / span * spec.Per.Seconds(), true
	case AggDistinct:
		return float64(len(districts)), true
	case AggRatio:
		return 100 * hits / float64(len(in)), true
	}
	q := quantiles[spec.Agg]
	return xs[int(q*float64(len(xs)-1))], true
}

// TestIncrementalEqualsRecomputation: for random panels and random
// readings, late and out of order within the window, with the clock moving
// on (across Harbin's midnight for calendar windows), the engine's value
// equals a recomputation from the raw readings: exactly, or within the
// sketch's 1% for percentiles.
func TestIncrementalEqualsRecomputation(t *testing.T) {
	loc, _ := time.LoadLocation(DefaultTimeZone)
	aggs := []string{AggCount, AggSum, AggMean, AggMin, AggMax, AggLast, AggRate, AggDistinct, AggRatio, AggP50, AggP95, AggP99}
	windows := []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, time.Hour}
	cals := []string{"", "", CalendarHour, CalendarDay, CalendarWeek}
	rng := rand.New(rand.NewPCG(1, 2))
	for c := 0; c < 300; c++ {
		spec := Spec{ID: "p", Feed: "req", Agg: aggs[rng.IntN(len(aggs))], Window: windows[rng.IntN(len(windows))], Calendar: cals[rng.IntN(len(cals))]}
		switch spec.Agg {
		case AggDistinct:
			spec.Tag = "district"
		case AggRatio:
			spec.Where = map[string]string{"resolved": "true"}
		case AggCount, AggRate:
		default:
			spec.Field = "response_min"
		}
		if spec.Calendar != "" {
			spec.Window = 0
			if spec.Agg == AggDistinct {
				spec.Calendar = "" // distinct forgets by time: sliding only here
				spec.Window = time.Minute
			}
		}
		spec = ScreenSpec{ID: "s", Panels: []Spec{spec}}.WithDefaults().Panels[0]
		e, clock, _ := newEngine(t, spec)
		// Start 20 minutes before Harbin's midnight (16:00 UTC).
		clock.t = time.Date(2026, 11, 29, 15, 40, 0, 0, time.UTC).Add(time.Duration(rng.IntN(600)) * time.Second)
		var kept []raw
		look := spec.Window
		if spec.Calendar != "" {
			look = 30 * time.Minute
		}
		for round := 0; round < 8; round++ {
			batch := 1 + rng.IntN(60)
			var pts []feed.Point
			now := clock.Now()
			for i := 0; i < batch; i++ {
				r := raw{
					t:        now.Add(-time.Duration(rng.Int64N(int64(look) + int64(look)/2))), // some before the window
					district: []string{"daoli", "nangang", "songbei", "hulan"}[rng.IntN(4)],
					channel:  "12345",
					x:        math.Round(rng.Float64()*2000) / 10,
					resolved: rng.IntN(10) < 8,
				}
				pts = append(pts, request(r.t, r.district, r.channel, r.x, r.resolved))
				// The engine keeps what is in its window when it arrives.
				oldest, _, _, _ := e.layout.Load().screens[0].panels[0].bounds(now.UnixNano())
				if spec.Calendar == "" {
					oldest = now.UnixNano() - int64(spec.Window)
				}
				if r.t.UnixNano() > oldest {
					kept = append(kept, r)
				}
			}
			e.Observe("req", pts)
			clock.Add(time.Duration(rng.IntN(int(look/time.Second)/3+1)) * time.Second)
			now = clock.Now()
			v := viewOf(t, e, "p")
			want, ok := reference(spec, kept, now, loc)
			if !ok {
				if v.Value != nil {
					t.Fatalf("case %d %+v round %d: engine %v, reference has nothing", c, spec, round, *v.Value)
				}
				continue
			}
			if v.Value == nil {
				t.Fatalf("case %d %+v round %d: engine nothing, reference %v", c, spec, round, want)
			}
			got := *v.Value
			tol := 1e-9 * math.Max(1, math.Abs(want))
			if _, pct := quantiles[spec.Agg]; pct {
				tol = 0.011*math.Abs(want) + 1e-9
			}
			if math.Abs(got-want) > tol {
				t.Fatalf("case %d %+v round %d at %s: engine %v, recomputed %v", c, spec, round, now.In(loc).Format("01-02 15:04:05"), got, want)
			}
		}
	}
}

// TestAlertTransitionsFollowThresholds: over random walks of a value,
// evaluated every 10 s on a fake clock, each status is raised only after
// the value stayed past its line for `for`, is raised by then at the
// latest, and falls only once the value is `hysteresis` back.
func TestAlertTransitionsFollowThresholds(t *testing.T) {
	th := &Thresholds{Warn: fl(50), Crit: fl(80), Hysteresis: 5, For: 30 * time.Second}
	rng := rand.New(rand.NewPCG(3, 4))
	for c := 0; c < 200; c++ {
		below := c%2 == 1
		th.Below = below
		if below {
			th.Warn, th.Crit = fl(50), fl(20)
		} else {
			th.Warn, th.Crit = fl(50), fl(80)
		}
		e, clock, _ := alertEngine(t, th)
		x := 50 + rng.Float64()*20 - 10
		var past []Status // raw status at each evaluation
		prev := StatusOK
		for step := 0; step < 120; step++ {
			x = math.Max(0, math.Min(100, x+rng.NormFloat64()*8))
			clock.read(e, x)
			got := viewOf(t, e, "temp").Status
			raw := classify(th, x, 0)
			past = append(past, raw)
			if level[got] > level[prev] {
				// Raised: the value was at least this bad for the last 30 s
				// (this evaluation and the three before).
				for i := max(0, len(past)-4); i < len(past); i++ {
					if level[past[i]] < level[got] {
						t.Fatalf("case %d step %d: raised to %s though %d steps ago it was %s", c, step, got, len(past)-1-i, past[i])
					}
				}
			}
			if level[got] < level[prev] && level[classify(th, x, th.Hysteresis)] >= level[prev] {
				t.Fatalf("case %d step %d: %s fell to %s at %v, within the hysteresis", c, step, prev, got, x)
			}
			if level[got] < level[prev] && level[got] != level[classify(th, x, th.Hysteresis)] {
				t.Fatalf("case %d step %d: fell from %s to %s, the value (%v) says %s", c, step, prev, got, x, classify(th, x, th.Hysteresis))
			}
			if len(past) >= 4 {
				worst := 2
				for _, p := range past[len(past)-4:] {
					worst = min(worst, level[p])
				}
				if level[got] < worst {
					t.Fatalf("case %d step %d: %s after 30 s at least %d", c, step, got, worst)
				}
			}
			prev = got
			clock.Add(10 * time.Second)
		}
	}
}
