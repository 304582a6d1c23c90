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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// notification is what Alertmanager's webhook receiver is sent.
type notification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// webhook is a receiver the test owns: every notification, in order.
type webhook struct {
	mu    sync.Mutex
	got   []notification
	srv   *httptest.Server
	since int
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("webhook: %v", err)
		}
		w.mu.Lock()
		w.got = append(w.got, n)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// seen is each alert of each notification since the last call as
// "status severity panel", in order.
func (w *webhook) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, n := range w.got[w.since:] {
		for _, a := range n.Alerts {
			out = append(out, a.Status+" "+a.Labels["severity"]+" "+a.Labels["panel"])
		}
	}
	w.since = len(w.got)
	return out
}

// alertmanager is a real Alertmanager that routes everything to a webhook
// at once (group_wait 1s).
type alertmanager struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func startAlertmanager(t *testing.T, hook string, addr string, repeat ...string) *alertmanager {
	t.Helper()
	repeatInterval := "1h"
	if len(repeat) > 0 {
		repeatInterval = repeat[0]
	}
	bin := env(t, "CITYSCREEN_TEST_ALERTMANAGER")
	dir := t.TempDir()
	if addr == "" {
		addr = testkit.FreeAddr(t)
	}
	conf := fmt.Sprintf(`route:
  receiver: hook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, repeatInterval, hook)
	os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(conf), 0o644)
	am := &alertmanager{addr: addr, dir: dir}
	am.cmd = exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, _ := os.Create(filepath.Join(dir, "alertmanager.log"))
	am.cmd.Stdout, am.cmd.Stderr = logf, logf
	if err := am.cmd.Start(); err != nil {
		t.Fatalf("alertmanager: %v", err)
	}
	t.Cleanup(am.stop)
	testkit.WaitFor(t, 20*time.Second, func() bool { return getStatus("http://"+addr+"/-/ready") == http.StatusOK })
	return am
}

func (am *alertmanager) stop() {
	if am.cmd.Process != nil && am.cmd.ProcessState == nil {
		am.cmd.Process.Kill()
		am.cmd.Wait()
	}
}

// TestAlertmanager: alerts reach a real Alertmanager and its webhook
// receiver. A critical panel is notified with the labels that route it
// and a summary; clearing it is notified resolved. With Alertmanager down
// for 30 s while an alert fires and clears, both are notified, in order,
// once it is back. A restart of cityscreen while an alert is active does
// not make it resolve.
func TestAlertmanager(t *testing.T) {
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.srv.URL, "")
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{
		"CITYSCREEN_ALERTMANAGER_URLS": "http://" + am.addr, "CITYSCREEN_ALERTMANAGER_RESEND": "2s",
		"CITYSCREEN_ALERTMANAGER_HOLD": "3s", "CITYSCREEN_STATE_DIR": t.TempDir(), "CITYSCREEN_HTTP_PUBLIC_URL": "https://screens.example/",
	})
	a, stop := start(t, site, env)
	pub := publisher(t, broker)
	send := func(pm25 ...float64) {
		for _, x := range pm25 {
			pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts":%d,"pm25":%v}`, time.Now().UnixMilli(), x)).Wait()
		}
	}
	// until waits for the notifications so far to satisfy ok.
	var got []string
	until := func(what string, ok func(got []string) bool) {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got = append(got, hook.seen()...); ok(got) {
				return
			}
		}
		resp, _ := http.Get("http://" + am.addr + "/api/v2/alerts")
		var body []byte
		if resp != nil {
			body = make([]byte, 4000)
			n, _ := resp.Body.Read(body)
			body = body[:n]
			resp.Body.Close()
		}
		t.Fatalf("%s: notified %q; Alertmanager holds %s", what, got, body)
	}
	index := func(s string) int { return slices.Index(got, s) }
	// settled: every alert notified firing is notified resolved after it.
	settled := func(got []string) bool {
		for i, s := range got {
			if rest, ok := strings.CutPrefix(s, "firing "); ok && !slices.Contains(got[i:], "resolved "+rest) {
				return false
			}
		}
		return true
	}
	send(200) // the mean, 200: critical
	until("the panel critical", func(g []string) bool { return slices.Equal(g, []string{"firing critical mean"}) })
	hook.mu.Lock()
	first := hook.got[0].Alerts[0]
	hook.mu.Unlock()
	if l := first.Labels; l["alertname"] != "CityscreenThreshold" || l["screen"] != "test" || l["kind"] != "threshold" ||
		!strings.HasPrefix(first.Annotations["summary"], "mean") || first.Annotations["value"] != "200" || first.Annotations["threshold"] != "115" ||
		!strings.HasPrefix(first.Annotations["history"], "https://screens.example/history.html?") {
		t.Errorf("the notification: %+v", first)
	}
	send(0, 0) // the mean 66.7, through warning (100): cleared
	until("the panel cleared", func(g []string) bool { return index("resolved critical mean") > 0 && settled(g) })
	got = nil

	// Alertmanager away for 30 s while the panel goes critical and clears.
	am.stop()
	send(1000) // mean 300
	testkit.WaitFor(t, 10*time.Second, func() bool { return values(t, a)["mean"] == "300" })
	time.Sleep(2 * time.Second)
	send(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)                                                        // mean 66.7: cleared
	testkit.WaitFor(t, 10*time.Second, func() bool { return values(t, a)["mean"] == fmt.Sprint(1200.0/19) }) // 19 readings
	time.Sleep(26 * time.Second)
	if g := hook.seen(); len(g) != 0 {
		t.Fatalf("notified %q with Alertmanager away", g)
	}
	am = startAlertmanager(t, hook.srv.URL, am.addr)
	until("after Alertmanager came back", func(g []string) bool {
		return index("firing critical mean") >= 0 && index("resolved critical mean") > index("firing critical mean") && settled(g)
	})
	got = nil

	// cityscreen restarts while the panel is critical: it stays firing.
	send(1000, 1000) // mean 152 (the feed takes at most 1000)
	until("critical again, through warning", func(g []string) bool {
		return index("firing critical mean") >= 0 && (index("firing warning mean") < 0 || index("resolved warning mean") >= 0)
	})
	stop()
	_, stop = start(t, site, env)
	time.Sleep(10 * time.Second) // several resends, beyond the hold
	if g := hook.seen(); len(g) != 0 {
		t.Fatalf("after a restart with the panel still critical, notified %q", g)
	}
	stop()
}

// TestDeployAlertmanagerConfig: deploy/alertmanager.yml loads in the real
// Alertmanager, routes a critical housing alert to the duty officer, the
// duty leader's WeCom and the housing bureau, and inhibits the warning of
// the same panel and group.
func TestDeployAlertmanagerConfig(t *testing.T) {
	bin := env(t, "CITYSCREEN_TEST_ALERTMANAGER")
	dir, addr := t.TempDir(), testkit.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file=../../deploy/alertmanager.yml", "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, _ := os.Create(filepath.Join(dir, "alertmanager.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.WaitFor(t, 20*time.Second, func() bool { return getStatus("http://"+addr+"/-/ready") == http.StatusOK })
	labels := `"alertname":"CityscreenThreshold","kind":"threshold","screen":"citizen-services","panel":"cases-overdue-by-department","district":"daoli","department":"housing-bureau"`
	body := fmt.Sprintf(`[{"labels":{%s,"severity":"critical"}},{"labels":{%s,"severity":"warning"}}]`, labels, labels)
	resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: %v %v", err, resp)
	}
	resp.Body.Close()
	var got string
	ok := func() bool {
		var alerts []struct {
			Labels    map[string]string
			Receivers []struct{ Name string }
			Status    struct {
				State       string
				InhibitedBy []string
			}
		}
		r, err := http.Get("http://" + addr + "/api/v2/alerts")
		if err != nil {
			return false
		}
		json.NewDecoder(r.Body).Decode(&alerts)
		r.Body.Close()
		got = ""
		for _, a := range alerts {
			var names []string
			for _, rc := range a.Receivers {
				names = append(names, rc.Name)
			}
			slices.Sort(names)
			got += fmt.Sprintf("%s:%s:%s:%d;", a.Labels["severity"], strings.Join(names, ","), a.Status.State, len(a.Status.InhibitedBy))
		}
		return strings.Contains(got, "critical:duty-leader-wecom,duty-officer,housing-bureau:active:0;") &&
			strings.Contains(got, "warning:duty-officer,housing-bureau:suppressed:1;")
	}
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager holds %s", got)
		}
	}
}

// TestAlertmanagerEscalation: an alert nobody acknowledges within
// alerts.escalate_after reaches Alertmanager again labelled
// escalated="true" (for a route to the duty leader); an assignment and an
// acknowledgement's comment travel as annotations.
func TestAlertmanagerEscalation(t *testing.T) {
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.srv.URL, "")
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{
		"CITYSCREEN_ALERTMANAGER_URLS": "http://" + am.addr, "CITYSCREEN_ALERTMANAGER_HOLD": "2s", "CITYSCREEN_ALERTS_ESCALATE_AFTER": "3s",
	})
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts":%d,"pm25":200}`, time.Now().UnixMilli())).Wait()
	find := func(ok func(status string, labels, ann map[string]string) bool) bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, n := range hook.got {
			for _, al := range n.Alerts {
				if ok(al.Status, al.Labels, al.Annotations) {
					return true
				}
			}
		}
		return false
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return find(func(st string, l, _ map[string]string) bool {
			return st == "firing" && l["escalated"] == "true" && l["panel"] == "mean"
		})
	})
	testkit.WaitFor(t, 30*time.Second, func() bool {
		return find(func(st string, l, _ map[string]string) bool {
			return st == "resolved" && l["escalated"] == "" && l["panel"] == "mean"
		})
	})
	var alerts []struct{ ID, Panel string }
	getJSON(t, a.URL()+"api/alerts", &alerts)
	if len(alerts) == 0 {
		t.Fatal("no alert listed")
	}
	call := authed(t, a, testToken)
	if code, body := call("POST", "api/alerts/"+alerts[0].ID+"/assign", `{"to":"住建局"}`); code != http.StatusOK {
		t.Fatalf("assign: %d %s", code, body)
	}
	if code, body := call("POST", "api/alerts/"+alerts[0].ID+"/ack", `{"comment":"going to look"}`); code != http.StatusOK {
		t.Fatalf("ack: %d %s", code, body)
	}
	// Alertmanager has them at the next sending; its API shows them.
	testkit.WaitFor(t, 30*time.Second, func() bool {
		r, err := http.Get("http://" + am.addr + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var got []struct{ Annotations map[string]string }
		json.NewDecoder(r.Body).Decode(&got)
		for _, g := range got {
			if g.Annotations["assignee"] == "住建局" && strings.Contains(g.Annotations["acknowledged"], "going to look") {
				return true
			}
		}
		return false
	})
	for _, bad := range []string{`{"comment":"` + strings.Repeat("x", 501) + `"}`, `{"comment":"a\u0007b"}`, `{"note":"x"}`} {
		if code, _ := call("POST", "api/alerts/"+alerts[0].ID+"/ack", bad); code != http.StatusBadRequest {
			t.Errorf("ack with %.40s: %d, want 400", bad, code)
		}
	}
}

// TestAlertmanagerShelve: shelving an alert makes a silence in the real
// Alertmanager (the alert is then suppressed there) and unshelving it
// expires the silence; shelving a second time and then clearing the
// alert expires that one too.
func TestAlertmanagerShelve(t *testing.T) {
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.srv.URL, "")
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ALERTMANAGER_URLS": "http://" + am.addr, "CITYSCREEN_ALERTMANAGER_HOLD": "2s"})
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	send := func(x float64) {
		pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts":%d,"pm25":%v}`, time.Now().UnixMilli(), x)).Wait()
	}
	send(200)
	type amSilence struct {
		ID       string
		Matchers []struct{ Name, Value string }
		Status   struct{ State string }
	}
	silences := func() map[string]string { // ID -> "state screen/panel"
		r, err := http.Get("http://" + am.addr + "/api/v2/silences")
		if err != nil {
			return nil
		}
		defer r.Body.Close()
		var ss []amSilence
		json.NewDecoder(r.Body).Decode(&ss)
		out := map[string]string{}
		for _, s := range ss {
			m := map[string]string{}
			for _, x := range s.Matchers {
				m[x.Name] = x.Value
			}
			out[s.ID] = s.Status.State + " " + m["screen"] + "/" + m["panel"]
		}
		return out
	}
	suppressed := func() bool {
		r, err := http.Get("http://" + am.addr + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var as []struct {
			Labels map[string]string
			Status struct{ State string }
		}
		json.NewDecoder(r.Body).Decode(&as)
		for _, x := range as {
			if x.Labels["panel"] == "mean" && x.Status.State == "suppressed" {
				return true
			}
		}
		return false
	}
	var id string
	testkit.WaitFor(t, 20*time.Second, func() bool {
		var alerts []struct{ ID, Panel string }
		getJSON(t, a.URL()+"api/alerts", &alerts)
		for _, al := range alerts {
			if al.Panel == "mean" {
				id = al.ID
			}
		}
		return id != ""
	})
	call := authed(t, a, testToken)
	for _, bad := range []string{`{"for":"10s"}`, `{"for":"8d"}`, `{"for":"soon"}`, `{}`} {
		if code, _ := call("POST", "api/alerts/"+id+"/shelve", bad); code != http.StatusBadRequest {
			t.Errorf("shelve %s: %d, want 400", bad, code)
		}
	}
	if code, body := call("POST", "api/alerts/"+id+"/shelve", `{"for":"2h","comment":"sensor under repair"}`); code != http.StatusOK || !strings.Contains(body, `"shelved_until"`) {
		t.Fatalf("shelve: %d %s", code, body)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		for _, v := range silences() {
			if v == "active test/mean" {
				return suppressed()
			}
		}
		return false
	})
	if code, body := call("DELETE", "api/alerts/"+id+"/shelve", ""); code != http.StatusOK {
		t.Fatalf("unshelve: %d %s", code, body)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		for _, v := range silences() {
			if v != "expired test/mean" {
				return false
			}
		}
		return true
	})
	// Shelved again, then the alert clears: its silence ends with it.
	if code, body := call("POST", "api/alerts/"+id+"/shelve", `{"for":"1h"}`); code != http.StatusOK {
		t.Fatalf("shelve again: %d %s", code, body)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool {
		n := 0
		for _, v := range silences() {
			if v == "active test/mean" {
				n++
			}
		}
		return n == 1
	})
	send(0)
	send(0)
	send(0) // the mean 50: cleared
	testkit.WaitFor(t, 20*time.Second, func() bool {
		for _, v := range silences() {
			if v != "expired test/mean" {
				return false
			}
		}
		return len(silences()) == 2
	})
}

// TestAlertmanagerAckSilence: with alertmanager.silence_acknowledged an
// acknowledgement stops an alert's repeated notifications (a silence in
// Alertmanager); without it they go on.
func TestAlertmanagerAckSilence(t *testing.T) {
	for _, silence := range []bool{false, true} {
		t.Run(fmt.Sprint("silence_acknowledged=", silence), func(t *testing.T) {
			hook := newWebhook(t)
			am := startAlertmanager(t, hook.srv.URL, "", "2s")
			site := newSite(t)
			env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ALERTMANAGER_URLS": "http://" + am.addr,
				"CITYSCREEN_ALERTMANAGER_SILENCE_ACKNOWLEDGED": fmt.Sprint(silence)})
			a, _ := start(t, site, env)
			publisher(t, broker).Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts":%d,"pm25":200}`, time.Now().UnixMilli())).Wait()
			// Repeated every 2 s while nobody acknowledges it.
			n := 0
			testkit.WaitFor(t, 30*time.Second, func() bool { n += len(hook.seen()); return n >= 2 })
			var alerts []struct{ ID, Panel string }
			getJSON(t, a.URL()+"api/alerts", &alerts)
			if code, body := authed(t, a, testToken)("POST", "api/alerts/"+alerts[0].ID+"/ack", ""); code != http.StatusOK {
				t.Fatalf("ack: %d %s", code, body)
			}
			time.Sleep(3 * time.Second) // the silence made, a notification in flight arrived
			hook.seen()
			time.Sleep(6 * time.Second)
			repeats := len(hook.seen())
			if silence && repeats != 0 {
				t.Errorf("acknowledged and silenced, yet notified %d times in 6 s", repeats)
			}
			if !silence && repeats == 0 {
				t.Errorf("acknowledged without silence_acknowledged, and the notifications stopped")
			}
		})
	}
}

// TestResolveStaleByHand: a stale alert (a silent feed) is resolved by
// hand, with a comment, and Alertmanager is told; a threshold alert is
// not (409): it clears with its value.
func TestResolveStaleByHand(t *testing.T) {
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.srv.URL, "")
	site := newSite(t)
	site.write(t, map[string]string{"screens/quiet.yaml": "id: quiet\npanels:\n  - {id: quiet, feed: air, agg: count, window: 1h, stale_after: 2s}\n"})
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ALERTMANAGER_URLS": "http://" + am.addr, "CITYSCREEN_ALERTMANAGER_HOLD": "1s"})
	a, _ := start(t, site, env)
	publisher(t, broker).Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts":%d,"pm25":200}`, time.Now().UnixMilli())).Wait()
	ids := map[string]string{} // panel -> active alert ID
	testkit.WaitFor(t, 30*time.Second, func() bool {
		var alerts []struct {
			ID, Panel, Status string
			Cleared           *time.Time
		}
		getJSON(t, a.URL()+"api/alerts", &alerts)
		clear(ids)
		for _, al := range alerts {
			if al.Cleared == nil {
				ids[al.Panel+" "+al.Status] = al.ID
			}
		}
		return ids["quiet stale"] != "" && ids["mean crit"] != ""
	})
	testkit.WaitFor(t, 30*time.Second, func() bool { return slices.Contains(hook.seen(), "firing warning quiet") })
	call := authed(t, a, testToken)
	if code, body := call("POST", "api/alerts/"+ids["mean crit"]+"/resolve", `{"comment":"no"}`); code != http.StatusConflict {
		t.Errorf("resolving a threshold alert by hand: %d %s", code, body)
	}
	code, body := call("POST", "api/alerts/"+ids["quiet stale"]+"/resolve", `{"comment":"sensor removed"}`)
	if code != http.StatusOK || !strings.Contains(body, `"resolved_comment":"sensor removed"`) || !strings.Contains(body, `"cleared":"`) {
		t.Fatalf("resolving the stale alert: %d %s", code, body)
	}
	testkit.WaitFor(t, 30*time.Second, func() bool { return slices.Contains(hook.seen(), "resolved warning quiet") })
	if code, _ := call("POST", "api/alerts/"+ids["quiet stale"]+"/resolve", ""); code != http.StatusNotFound {
		t.Errorf("resolving it again: %d, want 404", code)
	}
}
