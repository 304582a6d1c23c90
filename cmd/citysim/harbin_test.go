package main

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/citymap"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// TestGeneratorsMatchShippedFeeds: everything the simulator publishes is
// accepted by the demo feeds in config/, at every hour of the day, and its
// garbage is rejected.
func TestGeneratorsMatchShippedFeeds(t *testing.T) {
	cfg, err := config.Load("../../config/cityscreen.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*feed.Feed{}
	for _, spec := range cfg.Feeds {
		f, err := feed.New(spec, feed.Options{})
		if err != nil {
			t.Fatal(err)
		}
		feeds[spec.ID] = f
	}
	r := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 1, 15, 0, 0, 0, 0, shanghai)
	for _, g := range generators {
		f := feeds[g.feed]
		if f == nil {
			t.Fatalf("generator for %q has no feed in config/feeds", g.feed)
		}
		for i := 0; i < 2000; i++ {
			now := day.Add(time.Duration(i) * 43 * time.Second) // across the whole day
			m := g.make(r, now)
			if !f.Matches(m.topic) {
				t.Fatalf("%s: topic %q does not match %q", g.feed, m.topic, f.Spec().Topic)
			}
			if _, err := f.Decode(m.topic, m.payload, now); err != nil {
				t.Fatalf("%s: %q rejected: %v", g.feed, m.payload, err)
			}
		}
	}
	air := feeds["air-quality"]
	for i := 0; i < 50; i++ {
		m := garbage(r)
		if _, err := air.Decode(m.topic, m.payload, time.Now()); err == nil {
			t.Fatalf("garbage %q accepted", m.payload)
		}
	}
}

func TestAQI(t *testing.T) {
	for pm, want := range map[float64]int{0: 0, 35: 50, 55: 75, 75: 100, 150: 200, 600: 500} {
		if got := aqi(pm); got != want {
			t.Errorf("aqi(%v) = %d, want %d", pm, got, want)
		}
	}
}

// TestStationsInTheirDistricts places every air station inside its own
// district on the demo's map (config/maps/harbin.geojson, from make
// assets), so that the wall draws none in the next district or the sea.
func TestStationsInTheirDistricts(t *testing.T) {
	m, err := citymap.Load("../../config/maps/harbin.geojson", "name")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"daoli": "道里区", "nangang": "南岗区", "daowai": "道外区", "xiangfang": "香坊区", "pingfang": "平房区",
		"songbei": "松北区", "hulan": "呼兰区", "acheng": "阿城区", "shuangcheng": "双城区"}
	for _, d := range districts {
		for i := range d.stations {
			lon, lat := d.station(i)
			if got, ok := m.Locate(lon, lat); !ok || got != names[d.name] {
				t.Errorf("%s station %d at %.4f, %.4f is in %q", d.name, i+1, lon, lat, got)
			}
		}
	}
}

// TestCaseHistory: the requests' history at start holds only events up to
// now, oldest first, closings among them (on time and late against the
// demo's limits), and leaves the rest of the open requests' lives queued.
func TestCaseHistory(t *testing.T) {
	s := &caseSim{}
	now := time.Now()
	msgs := s.history(rand.New(rand.NewPCG(1, 2)), now, 300)
	statuses := map[string]int{}
	var last time.Time
	for _, m := range msgs {
		var e struct{ Status, Time string }
		if err := json.Unmarshal(m.payload, &e); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || at.After(now) || at.Before(last) {
			t.Fatalf("event at %v (%v), after %v, now %v", at, err, last, now)
		}
		last = at
		statuses[e.Status]++
	}
	if statuses["received"] != 300 || statuses["closed"] < 100 || statuses["closed"] >= 300 || len(s.queue) == 0 {
		t.Fatalf("%d events %v; %d queued", len(msgs), statuses, len(s.queue))
	}
	if next := s.queue[0].at; !next.After(now) {
		t.Fatalf("queued an event at %v, not after now %v", next, now)
	}
}
