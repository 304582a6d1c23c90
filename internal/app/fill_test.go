package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// TestPanelsFilledAfterRestart: after a restart the panels show at once
// what they showed before it, read back from InfluxDB, not a blank screen.
func TestPanelsFilledAfterRestart(t *testing.T) {
	site := newSite(t)
	os.WriteFile(filepath.Join(site.dir, "screens", "trend.yaml"), []byte(`id: trend
panels:
  - {id: n, feed: air, agg: count, window: 1m, history: {span: 1h, step: 5m}}
  - {id: p95, feed: air, field: pm25, agg: p95, window: 1h}
`), 0o644)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": t.TempDir()})
	a, stop := start(t, site, env)
	pub := publisher(t, broker)
	now := time.Now()
	for i := 0; i < 200; i++ {
		payload := fmt.Sprintf(`{"ts": %d, "pm25": %d}`, now.Add(-time.Duration(200-i)*5*time.Second).UnixMilli(), 20+i%37)
		pub.Publish(fmt.Sprintf("%s/air/%s/s%d", site.prefix, []string{"daoli", "nangang", "hulan"}[i%3], i%4), 1, false, payload)
	}
	pub.Publish(site.prefix+"/heat/hulan", 1, false, fmt.Sprintf("x supply_temp=81.5 %d", now.UnixNano())).Wait()
	testkit.WaitFor(t, 10*time.Second, func() bool { return countInflux(t, site.airM) == 200 && countInflux(t, site.heatM) == 1 })
	before := values(t, a)
	if before["count"] != "200" {
		t.Fatalf("before the restart: %v", before)
	}
	// The trend's step in progress moves with the readings too
	// (history_now): the screen's trend counts all 200.
	var trendBefore hub.Frame
	testkit.WaitFor(t, 10*time.Second, func() bool {
		getJSON(t, a.URL()+"api/screens/trend", &trendBefore)
		n := 0.0
		for _, p := range trendBefore.Panels[0].History {
			n += p.V
		}
		return n == 200
	})
	pub.Disconnect(100)
	stop()

	a, _ = start(t, site, env)
	after := values(t, a)
	for id, v := range before {
		if after[id] != v {
			t.Errorf("panel %s: %s before the restart, %s after", id, v, after[id])
		}
	}
	// The trend (200 readings over 1000 s: four or five 5-minute steps)
	// comes back whole from InfluxDB, as it was before.
	want := map[int64]float64{}
	for i := 0; i < 200; i++ {
		ms := now.Add(-time.Duration(200-i) * 5 * time.Second).UnixMilli()
		want[ms-ms%(5*60*1000)]++
	}
	var trendAfter hub.Frame
	getJSON(t, a.URL()+"api/screens/trend", &trendAfter)
	hb, _ := json.Marshal(trendBefore.Panels[0].History)
	ha, _ := json.Marshal(trendAfter.Panels[0].History)
	histAfter, histBefore := trendAfter.Panels[0].History, trendBefore.Panels[0].History
	if len(histAfter) != len(want) || len(histBefore) != len(want) {
		t.Fatalf("trend before %s, after %s: want %d steps", hb, ha, len(want))
	}
	for i, p := range histAfter {
		if p.V != want[p.T.UnixMilli()] {
			t.Errorf("after the restart, the trend's step %s has %v, want %v (%s)", p.T, p.V, want[p.T.UnixMilli()], ha)
		}
		if b := histBefore[i]; !b.T.Equal(p.T) || b.V != p.V {
			t.Errorf("trend before %s, after %s", hb, ha)
		}
	}
	if *trendBefore.Panels[1].Value != *trendAfter.Panels[1].Value {
		t.Errorf("p95 before %v, after %v", *trendBefore.Panels[1].Value, *trendAfter.Panels[1].Value)
	}
}

// values are a screen's panel values as text, groups included.
func values(t *testing.T, a *App) map[string]string {
	t.Helper()
	var snap hub.Frame
	getJSON(t, a.URL()+"api/screens/test", &snap)
	out := map[string]string{}
	for _, p := range snap.Panels {
		switch {
		case p.Value != nil:
			out[p.ID] = fmt.Sprint(*p.Value)
		case len(p.Groups) > 0:
			b, _ := json.Marshal(p.Groups)
			var gs []struct {
				Tags  map[string]string
				Value float64
			}
			json.Unmarshal(b, &gs)
			out[p.ID] = fmt.Sprint(gs)
		default:
			out[p.ID] = string(p.Status)
		}
	}
	return out
}
