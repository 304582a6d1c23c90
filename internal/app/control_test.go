package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// testClusterSecret is the test cluster's secret (CITYSCREEN_CLUSTER_SECRET).
const testClusterSecret = "harbin-test-cluster-secret-0123456789"

// Three instances against one Mosquitto and one InfluxDB, one system
// (docs/scaling.md): a display token made on A is let in by B and C;
// revoked on B, it is refused by A and C and its websocket on C closes
// within two seconds; a feed registered on C is shown by A and its
// readings stored exactly once; an alert acknowledged on A is
// acknowledged on B; B killed mid-stream loses no reading, and a token
// made while it was away is let in by it when it is back.
func TestClusterControl(t *testing.T) {
	db, b := startInflux(t), startBroker(t)
	m := fmt.Sprintf("control_%d", time.Now().UnixNano())
	servers := map[string]*server{}
	for _, name := range []string{"a", "b", "c"} {
		dir := t.TempDir()
		writeSeqSite(dir, m)
		// A panel always in alert while readings come: the highest number
		// is past 0.
		os.WriteFile(filepath.Join(dir, "screens", "seq.yaml"), []byte(`id: seq
title: Numbered readings
panels:
  - {id: count, title: Readings, feed: seq, field: n, agg: count, window: 3h}
  - {id: max, title: Highest, feed: seq, field: n, agg: max, window: 3h, thresholds: {warn: 1}}
`), 0o644)
		servers[name] = serverIn(t, dir, db, b, m, "CITYSCREEN_CLUSTER_SHARE_GROUP=store",
			"CITYSCREEN_MQTT_CLIENT_ID=cityscreen-control-"+name, "CITYSCREEN_CLUSTER_SECRET="+testClusterSecret)
	}
	a, bb, c := servers["a"], servers["b"], servers["c"]
	for _, s := range servers {
		testkit.WaitFor(t, 30*time.Second, func() bool { return getStatus("http://"+s.addr+"/readyz") == http.StatusOK })
	}

	// A display token made on A.
	code, body := authedAt(t, a.addr)("POST", "api/tokens", `{"name":"wall-1","kind":"display","screens":["seq"]}`)
	if code != http.StatusCreated {
		t.Fatalf("token on A: %d %s", code, body)
	}
	var tok struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	json.Unmarshal([]byte(body), &tok)
	asDisplay := func(s *server) int {
		code, _ := authedURL(t, "http://"+s.addr+"/", tok.Token)("GET", "api/screens/seq", "")
		return code
	}
	for _, s := range []*server{bb, c} {
		testkit.WaitFor(t, 2*time.Second, func() bool { return asDisplay(s) == http.StatusOK })
	}
	// Its websocket on C.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+c.addr+"/ws?screen=seq&token="+tok.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	closed := make(chan time.Time, 1)
	reloads := make(chan string, 1)
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				closed <- time.Now()
				return
			}
			var m struct{ Type string }
			if json.Unmarshal(msg, &m) == nil && m.Type == "reload" {
				reloads <- m.Type
			}
		}
	}()
	// A reload asked of A reaches the display's page on C.
	if code, body := authedAt(t, a.addr)("POST", "api/displays/"+tok.ID+"/reload", ""); code != http.StatusOK {
		t.Fatalf("reload on A: %d %s", code, body)
	}
	select {
	case kind := <-reloads:
		t.Logf("the display's page on C was told to %s", kind)
	case <-time.After(5 * time.Second):
		t.Fatal("a reload asked of A does not reach the display's page on C")
	}
	// Revoked on B.
	revoked := time.Now()
	if code, body := authedAt(t, bb.addr)("DELETE", "api/tokens/"+tok.ID, ""); code != http.StatusOK {
		t.Fatalf("revoke on B: %d %s", code, body)
	}
	select {
	case at := <-closed:
		t.Logf("the revoked token's websocket on C closed %v after the revocation on B", at.Sub(revoked).Round(time.Millisecond))
		if at.Sub(revoked) > 2*time.Second {
			t.Errorf("the websocket closed %v after the revocation: want within 2s", at.Sub(revoked))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked token's websocket on C stays open")
	}
	for _, s := range []*server{a, c} { // refused everywhere within two seconds
		testkit.WaitFor(t, 2*time.Second, func() bool { return asDisplay(s) == http.StatusUnauthorized })
	}

	// A feed registered on C, shown by A and B, stored once.
	m2 := m + "_extra"
	spec := fmt.Sprintf(`{"id":"extra","topic":"extra/{run}","format":"line","measurement":%q}`, m2)
	if code, body := authedAt(t, c.addr)("POST", "api/feeds", spec); code != http.StatusCreated {
		t.Fatalf("register on C: %d %s", code, body)
	}
	for _, s := range []*server{a, bb} {
		testkit.WaitFor(t, 20*time.Second, func() bool {
			_, body := authedAt(t, s.addr)("GET", "api/feeds", "")
			return strings.Contains(body, `"extra"`)
		})
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("control-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	const extra = 300
	for i := 0; i < extra; i++ {
		tok := pub.Publish("extra/x", 1, false, fmt.Sprintf("seq n=%di %d", i, base.Add(time.Duration(i)*time.Millisecond).UnixNano()))
		tok.Wait()
	}
	pub.Disconnect(100)
	verify(t, db, m2, extra, 0, a, bb, c)

	// A stream, an alert acknowledged on A and shown so on B.
	st := startStream(t, b, "control")
	alertOf := func(s *server) (id, acked string) {
		var list []struct {
			ID      string     `json:"id"`
			Panel   string     `json:"panel"`
			Cleared *time.Time `json:"cleared"`
			AckedBy string     `json:"acked_by"`
		}
		_, body := authedAt(t, s.addr)("GET", "api/alerts", "")
		json.Unmarshal([]byte(body), &list)
		for _, al := range list {
			if al.Panel == "max" && al.Cleared == nil {
				return al.ID, al.AckedBy
			}
		}
		return "", ""
	}
	var id string
	testkit.WaitFor(t, 20*time.Second, func() bool { id, _ = alertOf(a); return id != "" })
	testkit.WaitFor(t, 20*time.Second, func() bool { bid, _ := alertOf(bb); return bid != "" })
	if code, body := authedAt(t, a.addr)("POST", "api/alerts/"+id+"/ack", `{"comment":"crew on the way"}`); code != http.StatusOK {
		t.Fatalf("ack on A: %d %s", code, body)
	}
	testkit.WaitFor(t, 2*time.Second, func() bool { _, by := alertOf(bb); return by != "" })

	// B killed mid-stream; a token made meanwhile is let in by B when it
	// is back, and no reading is lost.
	bb.stop(syscall.SIGKILL)
	code, body = authedAt(t, a.addr)("POST", "api/tokens", `{"name":"wall-2","kind":"display","screens":["seq"]}`)
	if code != http.StatusCreated {
		t.Fatalf("token on A while B is away: %d %s", code, body)
	}
	json.Unmarshal([]byte(body), &tok)
	time.Sleep(2 * time.Second)
	bb.start()
	testkit.WaitFor(t, 30*time.Second, func() bool { return getStatus("http://"+bb.addr+"/readyz") == http.StatusOK })
	if code := asDisplay(bb); code != http.StatusOK {
		t.Errorf("B, back, answers the token made while it was away with %d", code)
	}
	if _, by := alertOf(bb); by == "" {
		t.Error("B, back, does not show the acknowledgement")
	}
	time.Sleep(2 * time.Second)
	published := st.finish()
	verify(t, db, m, published, 0, a, bb, c)

	// The three audit logs verify as one history, against the heads each
	// instance told the cluster (read from A's mirror).
	time.Sleep(3 * time.Second) // a heartbeat of the heads after the last change
	logOf := func(s *server) string { return filepath.Join(filepath.Dir(s.logPath), "state", "audit.log") }
	cmd := exec.Command(binary(t), "audit", "verify", logOf(bb), logOf(c))
	cmd.Env = a.env
	out, err := cmd.CombinedOutput()
	t.Logf("cityscreen audit verify on A with B's and C's logs:\n%s", out)
	if err != nil || !strings.Contains(string(out), "one history (3 instances' heads") {
		t.Fatalf("the cluster's audit logs do not verify: %v", err)
	}
	for _, name := range []string{"cityscreen-control-a", "cityscreen-control-b", "cityscreen-control-c"} {
		if !strings.Contains(string(out), "instance "+name) {
			t.Errorf("no log of instance %s", name)
		}
	}
}
