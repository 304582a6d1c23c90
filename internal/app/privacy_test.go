package app

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// TestPersonalDataMasked: a hotline feed masks the caller's phone number
// and drops the name and ID-card number. None of them reaches InfluxDB, a
// websocket frame, the rejected list, a dry run or a file under the state
// directory; the masked number does, as a tag.
func TestPersonalDataMasked(t *testing.T) {
	site := newSite(t)
	measurement := "hotline_" + site.prefix[5:]
	os.WriteFile(filepath.Join(site.dir, "feeds", "hotline.yaml"), []byte(fmt.Sprintf(`id: hotline
topic: %s/hotline/{district}
measurement: %s
fields:
  response_min: {type: float}
tags:
  caller: {path: caller.phone}
private:
  - {path: caller.phone}
  - {path: caller.name, action: drop}
  - {path: caller.id_card, action: drop}
`, site.prefix, measurement)), 0o644)
	os.WriteFile(filepath.Join(site.dir, "screens", "hotline.yaml"), []byte(`id: hotline
title: Hotline
panels:
  - {id: by-caller, feed: hotline, agg: count, window: 1h, group_by: [caller]}
`), 0o644)
	stateDir := t.TempDir()
	vars, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": stateDir})
	a, _ := start(t, site, vars)
	secrets := []string{"13812345678", "张三丰", "230102199001011234"}

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.URL(), "http")+"ws?screen=hotline&token="+testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frames := make(chan string, 100)
	go func() {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			frames <- string(b)
		}
	}()

	pub := publisher(t, broker)
	good := `{"response_min": 12.5, "caller": {"phone": "13812345678", "name": "张三丰", "id_card": "230102199001011234"}}`
	bad := `{"response_min": "soon", "caller": {"phone": "13812345678", "name": "张三丰", "id_card": "230102199001011234"}}`
	pub.Publish(site.prefix+"/hotline/daoli", 1, false, good).Wait()
	pub.Publish(site.prefix+"/hotline/daoli", 1, false, bad).Wait()
	pub.Publish(site.prefix+"/hotline/daoli", 1, false, `not json, call 13812345678`).Wait()

	// Frames: the masked number shows as a group, the real one never.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the websocket closed")
			}
			for _, s := range secrets {
				if strings.Contains(f, s) {
					t.Fatalf("a frame carries %s: %s", s, f)
				}
			}
			seen = strings.Contains(f, `"caller":"138****5678"`)
		case <-deadline:
			t.Fatal("no frame with the masked caller")
		}
	}
	// InfluxDB: the point is there with the masked tag, nothing else of the caller.
	testkit.WaitFor(t, 10*time.Second, func() bool { return countInflux(t, measurement) == 1 })
	client := influxdb2.NewClient(env(t, "CITYSCREEN_TEST_INFLUX_URL"), "")
	defer client.Close()
	res, err := client.QueryAPI("-").QueryRaw(context.Background(),
		fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -1h) |> filter(fn: (r) => r._measurement == %q)`, measurement), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res, "138****5678") {
		t.Fatalf("InfluxDB lacks the masked tag: %s", res)
	}
	for _, s := range secrets {
		if strings.Contains(res, s) {
			t.Fatalf("InfluxDB holds %s", s)
		}
	}
	// The rejected list and a dry run show the masked payloads.
	call := authed(t, a, testToken)
	testkit.WaitFor(t, 5*time.Second, func() bool {
		_, body := call("GET", "api/feeds/hotline/rejected", "")
		return strings.Count(body, `"reason"`) == 2
	})
	_, rejected := call("GET", "api/feeds/hotline/rejected", "")
	dryBody := fmt.Sprintf(`{"feed": {"id":"h","topic":"h/{d}","measurement":"m","fields":{"response_min":{"type":"float"}},"private":[{"path":"caller.phone"}]}, "topic":"h/x", "payload": %q}`, bad)
	_, dry := call("POST", "api/feeds/test", dryBody)
	for _, s := range secrets {
		if strings.Contains(rejected, s) {
			t.Errorf("the rejected list shows %s: %s", s, rejected)
		}
	}
	if !strings.Contains(rejected, "138****5678") || !strings.Contains(rejected, "payload withheld") {
		t.Errorf("the rejected list: %s", rejected)
	}
	if strings.Contains(dry, "13812345678") {
		t.Errorf("the dry run shows the number: %s", dry)
	}
	// Nothing under the state directory holds them (the log, the
	// quarantine, the audit log).
	noneUnder(t, stateDir, secrets)
}

// TestPersonalDataBoundToTopics: the main file protects the hotline's
// topics. A second feed on the same topics (a file feed on prefix/#, and
// one an engineer registers) stores only masked values; a payload that
// repeats the caller or puts callers in an array is masked everywhere; a
// feed that would read a protected path is refused; a topic preview shows
// the masked payload.
func TestPersonalDataBoundToTopics(t *testing.T) {
	site := newSite(t)
	spyM := "spy_" + site.prefix[5:]
	site.write(t, map[string]string{
		"cityscreen.yaml": fmt.Sprintf(`hub:
  coalesce: 50ms
influx:
  flush_interval: 100ms
privacy:
  - topic: %s/hotline/#
    paths:
      - {path: caller.phone}
      - {path: caller.name, action: drop}
      - {path: caller.id_card, action: drop}
`, site.prefix),
		// A feed on everything under the prefix that keeps the caller's
		// phone as a tag: it may, masked.
		"feeds/spy.yaml": fmt.Sprintf(`id: spy
topic: %s/#
measurement: %s
fields:
  minutes: {type: float}
tags:
  phone: {path: caller.phone}
`, site.prefix, spyM),
	})
	stateDir := t.TempDir()
	vars, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": stateDir})
	a, _ := start(t, site, vars)
	call := authed(t, a, testToken)
	secrets := []string{"13812345678", "13987654321", "张三丰", "230102199001011234"}

	// An engineer cannot define a feed that reads what the rules protect.
	for _, body := range []string{
		fmt.Sprintf(`{"id":"spy2","topic":"%s/+/{district}","measurement":"x","fields":{"phone":{"path":"caller.phone","type":"string"}}}`, site.prefix),
		fmt.Sprintf(`{"id":"spy3","topic":"#","measurement":"x","fields":{"m":{"path":"minutes","type":"float"}},"tags":{"name":{"path":"caller.name"}}}`),
	} {
		status, out := call("POST", "api/feeds", body)
		if status != http.StatusBadRequest || !strings.Contains(out, "personal data") {
			t.Errorf("registering %s: %d %s", body, status, out)
		}
	}
	// One that keeps the masked phone is let in, and sees it masked.
	if status, out := call("POST", "api/feeds", fmt.Sprintf(`{"id":"spy4","topic":"%s/hotline/+","measurement":"%s_4","fields":{"minutes":{"type":"float"}},"tags":{"phone":{"path":"caller.phone"}}}`, site.prefix, spyM)); status != http.StatusCreated {
		t.Fatalf("registering spy4: %d %s", status, out)
	}

	// A preview running while the messages arrive.
	previews := make(chan string, 1)
	go func() {
		_, out := call("GET", "api/feeds/preview?seconds=3&topic="+site.prefix+"/hotline/%23", "")
		previews <- out
	}()
	pub := publisher(t, broker)
	payloads := []string{
		`{"minutes": 1, "caller": {"phone": "13812345678"}, "caller": {"phone": "13987654321", "name": "张三丰"}}`,
		`{"minutes": 2, "caller": {"phone": "13812345678", "phone": "13987654321", "id_card": "230102199001011234"}}`,
		`{"minutes": 3, "caller": {"phone": ["13812345678", "13987654321"]}}`,
		`{"minutes": 4, "c\u0061ller": {"phone": "13812345678"}}`,
	}
	// Published until the preview ends, so that it sees some whenever it
	// subscribed.
	var preview string
	for i := 0; preview == ""; i++ {
		pub.Publish(site.prefix+"/hotline/daoli", 1, false, payloads[i%len(payloads)]).Wait()
		select {
		case preview = <-previews:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !strings.Contains(preview, "138****5678") {
		t.Errorf("the preview lacks the masked number: %s", preview)
	}
	for _, s := range secrets {
		if strings.Contains(preview, s) {
			t.Errorf("the preview shows %s: %s", s, preview)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return countInflux(t, spyM) >= 4 && countInflux(t, spyM+"_4") >= 4 })
	client := influxdb2.NewClient(env(t, "CITYSCREEN_TEST_INFLUX_URL"), "")
	defer client.Close()
	for _, m := range []string{spyM, spyM + "_4"} {
		res, err := client.QueryAPI("-").QueryRaw(context.Background(),
			fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -1h) |> filter(fn: (r) => r._measurement == %q)`, m), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res, "138****5678") && !strings.Contains(res, "139****4321") {
			t.Errorf("%s lacks the masked tag: %s", m, res)
		}
		for _, s := range secrets {
			if strings.Contains(res, s) {
				t.Errorf("InfluxDB's %s holds %s: %s", m, s, res)
			}
		}
	}
	// Nothing kept under the state directory holds them either.
	noneUnder(t, stateDir, secrets)
}

// noneUnder fails the test for each file under dir that holds a secret.
func noneUnder(t *testing.T, dir string, secrets []string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %s", path, s)
			}
		}
		return nil
	})
}
