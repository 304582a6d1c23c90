package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// BenchmarkAlertToWebhook: the time from a reading that changes an
// alert (published to the broker) to Alertmanager's webhook receiver
// getting the notification: through cityscreen's ingest, its panel, its
// alert, its notifier and the real Alertmanager (group_wait 0s,
// group_interval 1s, send_resolved). Each iteration raises a new alert (a
// station's last reading over its threshold) and clears it; reported:
// p50 and p99 of each transition, firing and resolved. A resolution
// waits for the group's interval in Alertmanager (1 s here) and for
// alertmanager.hold (1 ms here), both settings.
//
//	CITYSCREEN_TEST_INFLUX_URL=... CITYSCREEN_TEST_ALERTMANAGER=$(scripts/alertmanager.sh) \
//	  go test ./internal/app -run '^$' -bench AlertToWebhook -benchtime 50x
func BenchmarkAlertToWebhook(b *testing.B) {
	var mu sync.Mutex
	got := map[string]time.Time{} // "firing sN" -> when the webhook had it
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var n notification
		json.NewDecoder(r.Body).Decode(&n)
		mu.Lock()
		for _, a := range n.Alerts {
			k := a.Status + " " + a.Labels["station"]
			if _, ok := got[k]; !ok {
				got[k] = at
			}
		}
		mu.Unlock()
	}))
	defer hook.Close()
	dir, addr := b.TempDir(), testkit.FreeAddr(b)
	os.WriteFile(filepath.Join(dir, "am.yml"), []byte(fmt.Sprintf(`route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hook.URL)), 0o644)
	am := exec.Command(env(b, "CITYSCREEN_TEST_ALERTMANAGER"), "--config.file="+filepath.Join(dir, "am.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")
	if err := am.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { am.Process.Kill(); am.Wait() }()
	testkit.WaitFor(b, 20*time.Second, func() bool { return getStatus("http://"+addr+"/-/ready") == http.StatusOK })
	site := newSite(b)
	site.write(b, map[string]string{"screens/test.yaml": `id: test
panels:
  - {id: hot, feed: air, field: pm25, agg: last, window: 1h, group_by: [station], thresholds: {crit: 100}}
`})
	vars, broker := withEmbeddedBroker(b, map[string]string{"CITYSCREEN_ALERTMANAGER_URLS": "http://" + addr, "CITYSCREEN_ALERTMANAGER_HOLD": "1ms"})
	_, stop := start(b, site, vars)
	defer stop()
	pub := publisher(b, broker)
	var firing, resolved []time.Duration
	wait := func(k string, since time.Time) time.Duration {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			at, ok := got[k]
			mu.Unlock()
			if ok {
				return at.Sub(since)
			}
			time.Sleep(time.Millisecond)
		}
		b.Fatalf("no %s notification", k)
		return 0
	}
	i := 0
	for b.Loop() {
		st := fmt.Sprintf("s%d", i)
		i++
		topic := site.prefix + "/air/daoli/" + st
		t0 := time.Now()
		pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"pm25":200}`, t0.UnixMilli())).Wait()
		firing = append(firing, wait("firing "+st, t0))
		t1 := time.Now()
		pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"pm25":10}`, t1.UnixMilli())).Wait()
		resolved = append(resolved, wait("resolved "+st, t1))
	}
	for _, c := range []struct {
		name string
		d    []time.Duration
	}{{"firing", firing}, {"resolved", resolved}} {
		slices.Sort(c.d)
		b.ReportMetric(float64(c.d[len(c.d)/2].Microseconds())/1000, c.name+"-p50-ms")
		b.ReportMetric(float64(c.d[(len(c.d)*99)/100].Microseconds())/1000, c.name+"-p99-ms")
	}
}
