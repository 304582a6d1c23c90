//go:build soak

package app

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
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
	site := demoSite(t) // the shipped feeds, screens, labels and map
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
	// The script time of each frame (parse, apply, draw) and of each
	// second's tick, as the page measured them with performance.now(),
	// taken and cleared as the run goes.
	// The charts are drawn apart, in animation frames (draw), within a
	// budget; a draw task is as long as its charts.
	var frames, ticks, draws []float64
	charts := map[string][]float64{}
	takeTimings := func() {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string][]float64](`(() => { const t = window.cityscreenLive.timings; const out = Object.assign({}, t); for (const k in t) t[k] = []; return out; })()`))
		if err != nil {
			t.Fatal(err)
		}
		frames, ticks, draws = append(frames, v["frame"]...), append(ticks, v["tick"]...), append(draws, v["draw"]...)
		for k, ms := range v {
			if strings.HasPrefix(k, "chart:") {
				charts[k] = append(charts[k], ms...)
			}
		}
	}
	time.Sleep(time.Minute) // warmed up: charts drawn, buffers filling
	first, seq0 := heap()
	takeTimings()
	frames, ticks, draws = nil, nil, nil // the first minute draws everything once
	clear(charts)
	t.Logf("after 1 min: JS heap %.1f MiB, frame %d", first, seq0)
	for left := d - time.Minute; left > 0; left -= time.Minute {
		time.Sleep(min(left, time.Minute))
		takeTimings()
		if left%(10*time.Minute) == 0 {
			h, seq := heap()
			t.Logf("JS heap %.1f MiB, frame %d; frame script time so far: %s", h, seq, percentiles(frames))
		}
	}
	last, seq1 := heap()
	takeTimings()
	conn, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("conn").textContent`))
	fmt.Printf("soak %s at %s readings/s: JS heap %.1f MiB after 1 min, %.1f MiB at the end; %d frames; connection %s\n",
		d, rate, first, last, seq1-seq0, strings.TrimSpace(conn))
	fmt.Printf("script time per frame (parse, apply, draw; %d frames): %s\n", len(frames), percentiles(frames))
	fmt.Printf("script time per second's tick (clock, ages, stale; %d ticks): %s\n", len(ticks), percentiles(ticks))
	fmt.Printf("script time per draw task (the charts due, drawn in one animation frame; %d tasks): %s\n", len(draws), percentiles(draws))
	names := make([]string, 0, len(charts))
	for k := range charts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Printf("  %s (%d draws): %s\n", k, len(charts[k]), percentiles(charts[k]))
	}
	if conn != "live" || seq1 <= seq0 {
		t.Fatalf("the wall is not live at the end: %q, frames %d to %d", conn, seq0, seq1)
	}
}

// percentiles writes the p50, p99 and max of durations in ms.
func percentiles(ms []float64) string {
	if len(ms) == 0 {
		return "none"
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms", at(0.5), at(0.99), s[len(s)-1])
}
