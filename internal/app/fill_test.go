package app

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/hub"
)

// TestPanelsFilledAfterRestart: after a restart the panels show at once
// what they showed before it, read back from InfluxDB, not a blank screen.
func TestPanelsFilledAfterRestart(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": t.TempDir()})
	a, stop := start(t, site, env)
	pub := publisher(t, broker)
	now := time.Now()
	for i := 0; i < 200; i++ {
		payload := fmt.Sprintf(`{"ts": %d, "pm25": %d}`, now.Add(-time.Duration(200-i)*5*time.Second).UnixMilli(), 20+i%37)
		pub.Publish(fmt.Sprintf("%s/air/%s/s%d", site.prefix, []string{"daoli", "nangang", "hulan"}[i%3], i%4), 1, false, payload)
	}
	pub.Publish(site.prefix+"/heat/hulan", 1, false, fmt.Sprintf("x supply_temp=81.5 %d", now.UnixNano())).Wait()
	waitFor(t, 10*time.Second, func() bool { return countInflux(t, site.airM) == 200 && countInflux(t, site.heatM) == 1 })
	before := values(t, a)
	if before["count"] != "200" {
		t.Fatalf("before the restart: %v", before)
	}
	pub.Disconnect(100)
	stop()

	a, _ = start(t, site, env)
	after := values(t, a)
	for id, v := range before {
		if after[id] != v {
			t.Errorf("panel %s: %s before the restart, %s after", id, v, after[id])
		}
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
			out[p.ID] = p.Status
		}
	}
	return out
}
