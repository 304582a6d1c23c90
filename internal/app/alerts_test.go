package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// TestAlerts: a value past crit raises an alert that screens show and
// /api/alerts lists; an operator acknowledges it and every screen shows who;
// back under the line by the hysteresis it clears; raise, acknowledgement
// and clear are in InfluxDB and the acknowledgement in the audit log.
func TestAlerts(t *testing.T) {
	site := newSite(t)
	began := time.Now().UTC().Format(time.RFC3339Nano)
	os.WriteFile(filepath.Join(site.dir, "screens", "alarm.yaml"), []byte(`id: alarm
panels:
  - {id: pm25-now, feed: air, field: pm25, agg: last, window: 1h, stale_after: 1h, thresholds: {crit: 100, hysteresis: 10}}
`), 0o644)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	call := authed(t, a, testToken)
	status, body := call("POST", "api/tokens", `{"name":"duty-officer","role":"operator"}`)
	var op struct{ Token string }
	if json.Unmarshal([]byte(body), &op); status != 201 {
		t.Fatalf("operator token: %d %s", status, body)
	}
	ws := watch(t, a, "alarm")
	pub := publisher(t, broker)
	// Each reading a millisecond apart at least: "last" is the newest by
	// timestamp, whatever order two workers finish them in.
	at := time.Now().Add(-time.Minute)
	publish := func(x float64) {
		at = at.Add(time.Second)
		pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": %v}`, at.UnixMilli(), x)).Wait()
	}
	publish(130)
	p := ws.until(t, 5*time.Second, func(p map[string]hubPanel) bool { return p["pm25-now"].Status == "crit" && p["pm25-now"].Alert != nil })
	id := p["pm25-now"].Alert.ID

	list := alarms(t, call)
	if len(list) != 1 || list[0].ID != id || list[0].Status != "crit" || list[0].Cleared != nil || list[0].Panel != "pm25-now" {
		t.Fatalf("alerts: %+v", list)
	}
	if status, _ := authed(t, a, cr(t, a, "viewer"))("POST", "api/alerts/"+id+"/ack", ""); status != 403 {
		t.Fatalf("a viewer acknowledged: %d", status)
	}
	if status, body := authed(t, a, op.Token)("POST", "api/alerts/"+id+"/ack", ""); status != 200 || !strings.Contains(body, `"acked_by":"token:duty-officer`) {
		t.Fatalf("ack: %d %s", status, body)
	}
	ws.until(t, 5*time.Second, func(p map[string]hubPanel) bool {
		return p["pm25-now"].Alert != nil && strings.HasPrefix(p["pm25-now"].Alert.AckedBy, "token:duty-officer")
	})
	publish(95) // under crit, within the hysteresis: still crit
	publish(85)
	ws.until(t, 5*time.Second, func(p map[string]hubPanel) bool { return p["pm25-now"].Status == "ok" && p["pm25-now"].Alert == nil })
	list = alarms(t, call)
	if len(list) != 1 || list[0].Cleared == nil || list[0].AckedBy == "" {
		t.Fatalf("after clearing: %+v", list)
	}
	// raise, ack, clear: three events in InfluxDB.
	var events string
	testkit.WaitFor(t, 10*time.Second, func() bool {
		events = fluxStrings(t, `from(bucket: "city/autogen") |> range(start: `+began+`) |> filter(fn: (r) => r._measurement == "`+alert.Measurement+`" and r.screen == "alarm" and r._field == "event")`)
		return events == "raise ack clear"
	})
	_, audit := call("GET", "api/audit", "")
	if !strings.Contains(audit, `"action":"alert.ack","target":"`+id+`","outcome":"ok"`) {
		t.Fatalf("the audit log lacks the acknowledgement")
	}
}

// alarms lists the alerts of the screen alarm.
func alarms(t *testing.T, call func(method, path, body string) (int, string)) []alert.Alert {
	t.Helper()
	_, body := call("GET", "api/alerts", "")
	var all, out []alert.Alert
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		t.Fatalf("alerts: %v %s", err, body)
	}
	for _, a := range all {
		if a.Screen == "alarm" {
			out = append(out, a)
		}
	}
	return out
}

// fluxStrings runs a query and joins its string values in time order.
func fluxStrings(t *testing.T, q string) string {
	t.Helper()
	client := influxdb2.NewClient(env(t, "CITYSCREEN_TEST_INFLUX_URL"), "")
	defer client.Close()
	res, err := client.QueryAPI("-").Query(context.Background(), q+` |> group() |> sort(columns: ["_time"])`)
	if err != nil {
		t.Fatalf("flux: %v", err)
	}
	defer res.Close()
	var out []string
	for res.Next() {
		out = append(out, fmt.Sprint(res.Record().Value()))
	}
	return strings.Join(out, " ")
}

// cr makes an API token of a role and returns it.
func cr(t *testing.T, a *App, role string) string {
	t.Helper()
	status, body := authed(t, a, testToken)("POST", "api/tokens", `{"name":"`+role+`-`+fmt.Sprint(time.Now().UnixNano())+`","role":"`+role+`"}`)
	var tok struct{ Token string }
	if json.Unmarshal([]byte(body), &tok); status != 201 {
		t.Fatalf("token: %d %s", status, body)
	}
	return tok.Token
}
