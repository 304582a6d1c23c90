package app

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
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
	waitFor(t, 10*time.Second, func() bool { return countInflux(t, measurement) == 1 })
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
	waitFor(t, 5*time.Second, func() bool {
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
	filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
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
