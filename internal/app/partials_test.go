package app

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// writePartialSite writes a site whose screen "all" has panels of every
// aggregate and window kind over one line-protocol feed.
func writePartialSite(dir, measurement string) {
	os.MkdirAll(filepath.Join(dir, "feeds"), 0o755)
	os.MkdirAll(filepath.Join(dir, "screens"), 0o755)
	os.WriteFile(filepath.Join(dir, "cityscreen.yaml"), []byte("influx:\n  flush_interval: 200ms\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "feeds", "city.yaml"), []byte(`id: city
topic: partials/{run}
format: line
measurement: `+measurement+`
`), 0o644)
	var panels []string
	for _, agg := range []string{"count", "sum", "mean", "min", "max", "last", "rate", "p50", "p95", "p99"} {
		panels = append(panels,
			fmt.Sprintf("  - {id: %s, feed: city, field: n, agg: %s, window: 1h}", agg, agg),
			fmt.Sprintf("  - {id: %s-90s, feed: city, field: n, agg: %s, window: 90s}", agg, agg),
			fmt.Sprintf("  - {id: %s-by-district, feed: city, field: n, agg: %s, window: 10m, group_by: [district]}", agg, agg))
		if agg != "rate" { // a calendar rate's span is the time so far: it differs by the instant of evaluation
			for _, cal := range []string{"hour", "day", "week"} {
				panels = append(panels, fmt.Sprintf("  - {id: %s-%s, feed: city, field: n, agg: %s, calendar: %s}", agg, cal, agg, cal))
			}
		}
	}
	panels = append(panels,
		"  - {id: distinct, feed: city, agg: distinct, tag: district, window: 1h}",
		"  - {id: distinct-today, feed: city, agg: distinct, tag: district, calendar: day}",
		"  - {id: ratio, feed: city, agg: ratio, where: {district: d0}, window: 1h}",
		"  - {id: filtered, feed: city, field: n, agg: sum, filter: {district: d1}, window: 1h}",
		"  - {id: top, feed: city, field: n, agg: max, group_by: [district], top: 3, window: 1h}",
		"  - {id: trend, feed: city, field: n, agg: mean, window: 1h, history: {span: 1h, step: 1m}}")
	os.WriteFile(filepath.Join(dir, "screens", "all.yaml"), []byte("id: all\npanels:\n"+strings.Join(panels, "\n")+"\n"), 0o644)
}

// panelNumbers are a screen's panels' values, groups and trends, by panel:
// what a wall shows, without the times of evaluation.
func panelNumbers(t *testing.T, s *server) map[string]string {
	t.Helper()
	var snap struct {
		Panels []struct {
			ID      string          `json:"id"`
			Value   *float64        `json:"value"`
			Groups  json.RawMessage `json:"groups"`
			History json.RawMessage `json:"history"`
		} `json:"panels"`
	}
	_, body := authedAt(t, s.addr)("GET", "api/screens/all", "")
	json.Unmarshal([]byte(body), &snap)
	out := map[string]string{}
	for _, p := range snap.Panels {
		v := "none"
		if p.Value != nil {
			v = fmt.Sprint(*p.Value)
		}
		out[p.ID] = v + " " + string(p.Groups) + " " + string(p.History)
	}
	return out
}

// Two ingest instances publish their shares' partials; a screens
// instance builds its panels from them, started halfway through the
// stream (filled from InfluxDB, then partials); its panels equal those of
// a screens instance that decodes the full stream, for every aggregate
// and window kind, calendar windows included.
func TestClusterPartials(t *testing.T) {
	db, b := startInflux(t), startBroker(t)
	m := fmt.Sprintf("partials_%d", time.Now().UnixNano())
	start := func(name string, env ...string) *server {
		dir := t.TempDir()
		writePartialSite(dir, m)
		env = append(env, "CITYSCREEN_CLUSTER_SHARE_GROUP=store", "CITYSCREEN_MQTT_CLIENT_ID=cityscreen-partials-"+name)
		s := serverIn(t, dir, db, b, m, env...)
		testkit.WaitFor(t, 30*time.Second, func() bool { return getStatus("http://"+s.addr+"/readyz") == http.StatusOK })
		return s
	}
	partials := []string{"CITYSCREEN_CLUSTER_SECRET=" + testClusterSecret, "CITYSCREEN_CLUSTER_PARTIALS=true"}
	in1 := start("in1", append(partials, "CITYSCREEN_CLUSTER_ROLE=ingest")...)
	in2 := start("in2", append(partials, "CITYSCREEN_CLUSTER_ROLE=ingest")...)
	full := start("full", "CITYSCREEN_CLUSTER_ROLE=screens")

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("partials-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	rng := rand.New(rand.NewPCG(5, 6))
	n := 0
	send := func(count int) {
		for range count {
			// Whole numbers, so that sums are exact in any order; some
			// readings a little late.
			at := time.Now().Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
			line := fmt.Sprintf("city,district=d%d n=%di %d", rng.IntN(6), rng.IntN(1000), at.UnixNano())
			if tok := pub.Publish("partials/x", 1, false, line); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Errorf("publish: %v", tok.Error())
				return
			}
			n++
			if n%200 == 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// The screens instance starts while readings flow: filled from
	// InfluxDB up to its cut, then partials.
	sent := make(chan struct{})
	go func() { defer close(sent); send(8000) }()
	time.Sleep(1500 * time.Millisecond)
	shown := start("shown", append(partials, "CITYSCREEN_CLUSTER_ROLE=screens")...)
	<-sent
	// Every reading stored once, by one of the two ingest instances.
	testkit.WaitFor(t, 60*time.Second, func() bool { return countInfluxAt(t, db.url(), m) == int64(n) })

	var got, want map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, want = panelNumbers(t, shown), panelNumbers(t, full)
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(want) < 60 {
		t.Fatalf("the full-stream instance shows %d panels", len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("panel %s:\nfrom partials %s\nfull stream   %s", id, got[id], w)
		}
	}
	t.Logf("%d readings; %d panels compared; partials published %.0f and %.0f, merged %.0f", n, len(want),
		in1.metric("cityscreen_partials_published_total"), in2.metric("cityscreen_partials_published_total"),
		shown.metric("cityscreen_partials_merged_total"))
	if left := shown.metric("cityscreen_partials_left_out_total"); left != 0 {
		t.Errorf("%v partials left out", left)
	}
}
