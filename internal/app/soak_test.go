//go:build soak

package app

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestSoakWall runs the demo wall in Chromium against the Harbin simulator
// at full rate for CITYSCREEN_SOAK (default 1h) and reports the page's JS
// heap at the start and the end. Not part of make test:
//
//	make soak                      # or:
//	CITYSCREEN_SOAK=1h go test -tags soak -run TestSoakWall -timeout 2h -v ./internal/app
//
// It needs the test services of make test (CITYSCREEN_TEST_INFLUX_URL).
func TestSoakWall(t *testing.T) {
	d := time.Hour
	if v := os.Getenv("CITYSCREEN_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	rate := os.Getenv("CITYSCREEN_SOAK_RATE")
	if rate == "" {
		rate = "2000"
	}
	site := newSite(t)
	for _, sub := range []string{"feeds", "screens"} {
		os.RemoveAll(site.dir + "/" + sub)
		if out, err := exec.Command("cp", "-r", "../../config/"+sub, site.dir+"/"+sub).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	// Built, then run: killing `go run` would leave the simulator running.
	simBin := t.TempDir() + "/citysim"
	if out, err := exec.Command("go", "build", "-o", simBin, "../../cmd/citysim").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	sim := exec.Command(simBin, "-broker", broker, "-rate", rate)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sim.Process.Kill(); sim.Wait() }()
	status, body := authed(t, a, testToken)("POST", "api/tokens", `{"name":"soak","kind":"display","screens":["city-overview"]}`)
	var display struct{ Token string }
	if json.Unmarshal([]byte(body), &display); status != 201 {
		t.Fatalf("display token: %d %s", status, body)
	}
	ctx := browserFor(t, 1920, 1080, d+5*time.Minute)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=city-overview#token="+display.Token)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" })
	heap := func() (float64, int) {
		// After a full collection (Chromium runs with --expose-gc), so that
		// garbage not yet collected does not read as growth.
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { gc(); return [performance.memory.usedJSHeapSize, window.cityscreenLive.state.seq]; })()`))
		if err != nil {
			t.Fatal(err)
		}
		return v[0] / (1 << 20), int(v[1])
	}
	time.Sleep(time.Minute) // warmed up: charts drawn, buffers filling
	first, seq0 := heap()
	t.Logf("after 1 min: JS heap %.1f MiB, frame %d", first, seq0)
	for left := d - time.Minute; left > 0; left -= 10 * time.Minute {
		time.Sleep(min(left, 10*time.Minute))
		h, seq := heap()
		t.Logf("JS heap %.1f MiB, frame %d", h, seq)
	}
	last, seq1 := heap()
	conn, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("conn").textContent`))
	fmt.Printf("soak %s at %s readings/s: JS heap %.1f MiB after 1 min, %.1f MiB at the end; %d frames; connection %s\n",
		d, rate, first, last, seq1-seq0, strings.TrimSpace(conn))
	if conn != "live" || seq1 <= seq0 {
		t.Fatalf("the wall is not live at the end: %q, frames %d to %d", conn, seq0, seq1)
	}
}
