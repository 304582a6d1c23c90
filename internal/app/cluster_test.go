package app

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// Two instances against one Mosquitto and one InfluxDB, sharing the
// storing through the share group "store": every number is stored exactly
// once, one instance is killed mid-stream and comes back without a number
// lost, and both serve the same panels, computed from the full stream.
func TestClusterTwoInstances(t *testing.T) {
	db, b := startInflux(t), startBroker(t)
	m := fmt.Sprintf("cluster_%d", time.Now().UnixNano())
	env := func(name string) []string {
		return []string{"CITYSCREEN_CLUSTER_SHARE_GROUP=store", "CITYSCREEN_MQTT_CLIENT_ID=cityscreen-" + name}
	}
	one := newServer(t, db, b, m, env("one")...)
	two := newServer(t, db, b, m, env("two")...)
	for _, s := range []*server{one, two} {
		testkit.WaitFor(t, 30*time.Second, func() bool { return getStatus("http://"+s.addr+"/readyz") == http.StatusOK })
	}
	st := startStream(t, b, "cluster")
	time.Sleep(3 * time.Second)
	two.stop(syscall.SIGKILL) // mid-stream: its sessions keep its share at the broker
	killedAt := st.published.Load()
	time.Sleep(3 * time.Second)
	two.start()
	time.Sleep(3 * time.Second)
	published := st.finish()
	t.Logf("published %d; instance two killed after %d", published, killedAt)
	verify(t, db, m, published, 0, one, two)

	// Both instances did their share of the storing.
	w1, w2 := one.metric("cityscreen_store_points_written_total"), two.written+two.metric("cityscreen_store_points_written_total")
	t.Logf("points written: instance one %.0f, instance two %.0f", w1, w2)
	if w1 == 0 || w2 == 0 {
		t.Errorf("one instance stored nothing: %.0f and %.0f", w1, w2)
	}

	// Both show every number on their panels, the restarted one included
	// (filled from InfluxDB around its own stream).
	want := map[string]float64{"count": float64(published), "max": float64(published - 1)}
	var got [2]map[string]float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = [2]map[string]float64{panelValues(t, one), panelValues(t, two)}
		if fmt.Sprint(got[0]) == fmt.Sprint(want) && fmt.Sprint(got[1]) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) || fmt.Sprint(got[1]) != fmt.Sprint(want) {
		t.Fatalf("panels: instance one %v, instance two %v, want %v", got[0], got[1], want)
	}
}

// The profiler is off by default, and when on it is served on its own
// loopback listener only, never on the public one.
func TestPprofOnItsOwnListener(t *testing.T) {
	site := newSite(t)
	a, _ := start(t, site, map[string]string{"CITYSCREEN_MQTT_URL": env(t, "CITYSCREEN_TEST_MQTT_URL")})
	if code := getStatus(a.URL() + "debug/pprof/"); code == http.StatusOK {
		t.Fatalf("the public listener serves the profiler: %d", code)
	}
	addr := testkit.FreeAddr(t)
	b, _ := start(t, site, map[string]string{"CITYSCREEN_MQTT_URL": env(t, "CITYSCREEN_TEST_MQTT_URL"),
		"CITYSCREEN_DEBUG_PPROF_ADDR": addr, "CITYSCREEN_MQTT_CLIENT_ID": "cityscreen-pprof-" + site.prefix})
	if code := getStatus("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Fatalf("the profiler's listener answers %d", code)
	}
	if code := getStatus(b.URL() + "debug/pprof/"); code == http.StatusOK {
		t.Fatalf("the public listener serves the profiler: %d", code)
	}
}

// An ingest-only instance stores every reading and serves no screens; a
// screens-only instance stores nothing and shows every reading.
func TestClusterRoles(t *testing.T) {
	db, b := startInflux(t), startBroker(t)
	m := fmt.Sprintf("roles_%d", time.Now().UnixNano())
	store := newServer(t, db, b, m, "CITYSCREEN_CLUSTER_SHARE_GROUP=store", "CITYSCREEN_CLUSTER_ROLE=ingest",
		"CITYSCREEN_MQTT_CLIENT_ID=cityscreen-ingest")
	show := newServer(t, db, b, m, "CITYSCREEN_CLUSTER_SHARE_GROUP=store", "CITYSCREEN_CLUSTER_ROLE=screens",
		"CITYSCREEN_MQTT_CLIENT_ID=cityscreen-screens")
	for _, s := range []*server{store, show} {
		testkit.WaitFor(t, 30*time.Second, func() bool { return getStatus("http://"+s.addr+"/readyz") == http.StatusOK })
	}
	st := startStream(t, b, "roles")
	time.Sleep(3 * time.Second)
	published := st.finish()
	verify(t, db, m, published, 0, store, show)
	// The readings were written by the ingest-only instance; the other
	// writes only its panels' alert events (cityscreen_alert: the stream's
	// readings are stamped an hour back, so its panels go stale).
	if w := store.metric("cityscreen_store_points_written_total"); w < float64(published) {
		t.Errorf("the ingest-only instance wrote %v points of %d", w, published)
	}
	if w := show.metric("cityscreen_store_points_written_total"); w > 10 {
		t.Errorf("the screens-only instance wrote %v points", w)
	}
	var screens []map[string]any
	getJSON(t, "http://"+store.addr+"/api/screens", &screens)
	if len(screens) != 0 {
		t.Errorf("the ingest-only instance serves screens: %v", screens)
	}
	if code := getStatus("http://" + store.addr + "/api/screens/seq"); code != http.StatusNotFound {
		t.Errorf("the ingest-only instance answers %d for a screen", code)
	}
	var count float64
	testkit.WaitFor(t, 20*time.Second, func() bool {
		count = panelValues(t, show)["count"]
		return count == float64(published)
	})
	t.Logf("published %d; the screens-only instance counts %.0f", published, count)
}

// panelValues is the value of each ungrouped panel of a server's screen
// "seq" that has one.
func panelValues(t *testing.T, s *server) map[string]float64 {
	t.Helper()
	var snap struct {
		Panels []struct {
			ID    string   `json:"id"`
			Value *float64 `json:"value"`
		} `json:"panels"`
	}
	getJSON(t, "http://"+s.addr+"/api/screens/seq", &snap)
	out := map[string]float64{}
	for _, p := range snap.Panels {
		if p.Value != nil {
			out[p.ID] = *p.Value
		}
	}
	return out
}
