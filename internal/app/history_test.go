package app

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// historyScreen has a panel of every aggregate over the test site's air
// feed, over one hour.
const historyScreen = `id: test
title: History
panels:
  - {id: count, feed: air, agg: count, window: 1h}
  - {id: sum, feed: air, field: pm25, agg: sum, window: 1h}
  - {id: mean, feed: air, field: pm25, agg: mean, window: 1h, thresholds: {warn: 75, crit: 115}}
  - {id: min, feed: air, field: pm25, agg: min, window: 1h}
  - {id: max, feed: air, field: pm25, agg: max, window: 1h}
  - {id: last, feed: air, field: pm25, agg: last, window: 1h}
  - {id: rate, feed: air, agg: rate, window: 1h}
  - {id: stations, feed: air, agg: distinct, tag: station, window: 1h}
  - {id: daoli-share, feed: air, agg: ratio, where: {district: daoli}, window: 1h}
  - {id: p95, feed: air, field: pm25, agg: p95, window: 1h}
  - {id: nangang-sum, feed: air, field: pm25, agg: sum, filter: {district: nangang}, window: 1h}
  - {id: by-district, feed: air, field: pm25, agg: max, group_by: [district], window: 1h}
`

// historyReading is one air reading of the test.
type historyReading struct {
	at                time.Time
	district, station string
	pm25              float64
}

// TestPanelHistory: a panel's history against the real broker and
// InfluxDB. For every aggregate the step over the hour that holds the
// readings equals what the live panel shows for them (exactly, or within
// float rounding, or within the sketch's 1%); the filter leaves out the
// same readings; a group is asked for alone; the same range a day earlier
// comes beside it; CSV; and the refusals: too many points (with the
// smallest step), a bad step or range, an unknown panel, a display of
// another screen, a query past its time limit.
func TestPanelHistory(t *testing.T) {
	site := newSite(t)
	site.write(t, map[string]string{"screens/test.yaml": historyScreen,
		"screens/other.yaml": "id: other\npanels:\n  - {id: count, feed: air, agg: count}\n"})
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)

	// The readings fall within one hour-long step and within the live
	// panels' one-hour window.
	now := time.Now()
	hour := now.Truncate(time.Hour)
	if now.Sub(hour) < 2*time.Minute {
		time.Sleep(hour.Add(2 * time.Minute).Sub(now))
		now = time.Now()
	}
	rng := rand.New(rand.NewPCG(5, 6))
	districts := []string{"daoli", "nangang", "songbei"}
	var readings []historyReading
	for i := range 300 {
		readings = append(readings, historyReading{
			at:       hour.Add(time.Duration(rng.Int64N(int64(now.Add(-5 * time.Second).Sub(hour))))).Truncate(time.Millisecond),
			district: districts[i%3], station: fmt.Sprintf("st%02d", i%7), pm25: math.Round(rng.Float64()*2000) / 10,
		})
	}
	for _, r := range readings {
		pub.Publish(fmt.Sprintf("%s/air/%s/%s", site.prefix, r.district, r.station), 1, false,
			fmt.Sprintf(`{"ts":%d,"pm25":%v}`, r.at.UnixMilli(), r.pm25)).Wait()
	}
	rangeQuery := "/history?from=" + url.QueryEscape(hour.Format(time.RFC3339)) + "&to=" + url.QueryEscape(hour.Add(time.Hour).Format(time.RFC3339)) + "&step=1h"
	history := func(panelID, extra string) (int, panel.HistoryAnswer, string) {
		t.Helper()
		code, body := authed(t, a, testToken)("GET", "api/screens/test/panels/"+panelID+rangeQuery+extra, "")
		var ans panel.HistoryAnswer
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &ans); err != nil {
				t.Fatalf("%s: %v: %s", panelID, err, body)
			}
		}
		return code, ans, body
	}
	// The rollups reach InfluxDB within rollupEvery and the flush.
	testkit.WaitFor(t, 30*time.Second, func() bool {
		_, ans, _ := history("count", "")
		return len(ans.Series) == 1 && len(ans.Series[0].Points) == 1 && ans.Series[0].Points[0].V == 300
	})
	var snap hub.Frame
	getJSON(t, a.URL()+"api/screens/test", &snap)
	for _, p := range snap.Panels {
		want := map[string]float64{}
		if p.Value != nil {
			want["map[]"] = *p.Value
		}
		for _, g := range p.Groups {
			want[fmt.Sprint(g.Tags)] = g.Value
		}
		code, ans, body := history(p.ID, "")
		if code != http.StatusOK || ans.Panel != p.ID || ans.Step != "1h" {
			t.Fatalf("%s: %d %s", p.ID, code, body)
		}
		got := map[string]float64{}
		for _, s := range ans.Series {
			if len(s.Points) != 1 || !s.Points[0].T.Equal(hour) {
				t.Fatalf("%s: series %+v, want one point at %v", p.ID, s, hour)
			}
			got[fmt.Sprint(s.Tags)] = s.Points[0].V
		}
		if len(got) != len(want) {
			t.Fatalf("%s: history %v, live %v", p.ID, got, want)
		}
		for k, w := range want {
			tol := 0.0
			switch p.ID {
			case "sum", "mean", "daoli-share", "rate", "nangang-sum":
				tol = 1e-12 * math.Abs(w)
			case "p95":
				tol = 0.01 * math.Abs(w)
			}
			if math.Abs(got[k]-w) > tol {
				t.Errorf("%s %s: history %v, live %v", p.ID, k, got[k], w)
			}
		}
	}
	// One group, asked for.
	if _, ans, body := history("by-district", "&group=district=songbei"); len(ans.Series) != 1 || ans.Series[0].Tags["district"] != "songbei" {
		t.Errorf("one group: %s", body)
	}

	// The same readings a day earlier, rolled up by an engine of the same
	// screens whose clock stood then, stored as cityscreen stores rollups.
	cfg, err := config.Load(filepath.Join(site.dir, "cityscreen.yaml"), map[string]string{"CITYSCREEN_INFLUX_URL": env0(t)})
	if err != nil {
		t.Fatal(err)
	}
	clock := hour.Add(-24 * time.Hour)
	old := panel.New(cfg.Screens, nopSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		panel.Options{Now: func() time.Time { return clock }, Run: "yesterday/1", Rollups: cfg.History.Rollups})
	var lines []string
	for m := clock; m.Before(hour.Add(-23 * time.Hour)); m = m.Add(time.Minute) {
		clock = m.Add(time.Minute - time.Nanosecond)
		var batch []feed.Point
		for _, r := range readings {
			if at := r.at.Add(-24 * time.Hour); !at.Before(m) && at.Before(m.Add(time.Minute)) {
				v, _ := lineprotocol.FloatValue(r.pm25)
				batch = append(batch, feed.Point{Measurement: site.airM, Time: at,
					Tags: []feed.Tag{{Key: "district", Value: r.district}, {Key: "station", Value: r.station}}, Fields: []feed.Field{{Key: "pm25", Value: v}}})
			}
		}
		old.Observe("air", batch)
		for _, pt := range old.Rollups() {
			var enc lineprotocol.Encoder
			pt.AppendLine(&enc)
			lines = append(lines, strings.TrimSpace(string(enc.Bytes())))
		}
	}
	client := influxdb2.NewClient(env0(t), "")
	defer client.Close()
	if err := client.WriteAPIBlocking("-", "city/autogen").WriteRecord(context.Background(), lines...); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"sum", "p95", "stations", "by-district"} {
		_, ans, body := history(id, "&compare=1d")
		if ans.Offset != "24h" || len(ans.Compare) != len(ans.Series) {
			t.Fatalf("%s compared with a day earlier: %s", id, body)
		}
		for i, s := range ans.Series {
			c := ans.Compare[i]
			if fmt.Sprint(c.Tags) != fmt.Sprint(s.Tags) || len(c.Points) != 1 || !c.Points[0].T.Equal(hour) || math.Abs(c.Points[0].V-s.Points[0].V) > 1e-12*math.Abs(s.Points[0].V) {
				t.Errorf("%s: a day earlier %+v, today %+v", id, c, s)
			}
		}
	}

	// CSV: a header, a row per group and step, a file name.
	req, _ := http.NewRequest("GET", a.URL()+"api/screens/test/panels/by-district"+rangeQuery+"&format=csv&compare=1d", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="test-by-district-`) ||
		len(rows) != 7 || strings.Join(rows[0], ",") != "time,district,max,series" || rows[1][0] != hour.UTC().Format(time.RFC3339) || rows[4][3] != "-24h" {
		t.Errorf("CSV: %v %v %v", err, resp.Header, rows)
	}

	// Refusals.
	for _, c := range []struct {
		path string
		code int
		says string
	}{
		{"api/screens/test/panels/count/history?from=-30d&step=1m", 400, "the smallest step for this range is 5m"},
		{"api/screens/test/panels/count/history?from=-1h&step=90s", 400, "whole minutes"},
		{"api/screens/test/panels/count/history?from=yesterday", 400, "RFC 3339"},
		{"api/screens/test/panels/count/history?from=-1h&to=-2h", 400, "before"},
		{"api/screens/test/panels/count/history?compare=soon", 400, "compare"},
		{"api/screens/test/panels/count/history?format=xml", 400, "csv"},
		{"api/screens/test/panels/nope/history", 404, "no panel"},
	} {
		if code, body := authed(t, a, testToken)("GET", c.path, ""); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("GET %s: %d %s, want %d saying %q", c.path, code, body, c.code, c.says)
		}
	}
	code, body := authed(t, a, testToken)("POST", "api/tokens", `{"name":"other-wall","kind":"display","screens":["other"]}`)
	var tok struct{ Token string }
	if json.Unmarshal([]byte(body), &tok); code != http.StatusCreated || tok.Token == "" {
		t.Fatalf("a display token: %d %s", code, body)
	}
	if code, body := authed(t, a, tok.Token)("GET", "api/screens/test/panels/count/history", ""); code != http.StatusForbidden {
		t.Errorf("a display of another screen: %d %s", code, body)
	}
	if code, _ := authed(t, a, tok.Token)("GET", "api/screens/other/panels/count/history", ""); code != http.StatusOK {
		t.Errorf("a display of its own screen: %d", code)
	}
}

// TestPanelHistoryTimeout: a history query past history.timeout is
// cancelled and answered 504.
func TestPanelHistoryTimeout(t *testing.T) {
	site := newSite(t)
	env, _ := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_HISTORY_TIMEOUT": "1ns"})
	a, _ := start(t, site, env)
	if code, body := authed(t, a, testToken)("GET", "api/screens/test/panels/mean/history?from=-7d", ""); code != http.StatusGatewayTimeout || !strings.Contains(body, "time limit") {
		t.Errorf("%d %s", code, body)
	}
}

type nopSink struct{}

func (nopSink) Publish(string, []panel.View) {}
func (nopSink) Turn(int)                     {}

func env0(t *testing.T) string { return env(t, "CITYSCREEN_TEST_INFLUX_URL") }

// TestHistoryInBrowser: on a phone, a tap on a summary card's history
// opens the panel's last 24 hours, drawn; the 7-day button redraws it by
// the hour and puts the range in the address; the CSV downloads; nothing
// is wider than the phone; the same address reads in Chinese.
func TestHistoryInBrowser(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	now := time.Now()
	for i := range 40 {
		pub.Publish(fmt.Sprintf("%s/air/daoli/s%d", site.prefix, i%3), 1, false,
			fmt.Sprintf(`{"ts":%d,"pm25":%d}`, now.Add(-time.Duration(i)*30*time.Second).UnixMilli(), 20+i)).Wait()
	}
	testkit.WaitFor(t, 30*time.Second, func() bool {
		code, body := authed(t, a, testToken)("GET", "api/screens/test/panels/mean/history", "")
		return code == http.StatusOK && strings.Contains(body, `"points":[[`)
	})
	ctx := browser(t, 390, 844)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"summary.html?screen=test#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the mean card's history link", `!!document.querySelector('[data-panel="mean"] a.drill')`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('[data-panel="mean"] a.drill').click(), true`)); err != nil {
		t.Fatal(err)
	}
	drawn := `(() => { const h = window.cityscreenHistory; if (typeof echarts === "undefined" || !h) return false;
		const c = echarts.getInstanceByDom(document.getElementById("chart"));
		return !!(h && c && h.step === %q && location.search.includes(%q) && c.getOption().series[0].data.length > 0); })()`
	waitJS(t, ctx, "the last 24 hours drawn", fmt.Sprintf(drawn, "15m", "range=24h"))
	waitText(t, ctx, "#heading", "the panel's title", func(s string) bool { return s == "mean" })
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#ranges [data-range="7d"]').click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the last 7 days drawn by the hour", fmt.Sprintf(drawn, "1h", "range=7d"))
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil || overflow > 0 {
		t.Errorf("the history page is %d px wider than the phone (%v)", overflow, err)
	}
	screenshot(t, ctx, "history-390x844")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("csv").click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the CSV downloaded", `Number(document.getElementById("csv").dataset.downloaded) >= 2`)
	// The same address in Chinese.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.search += "&lang=zh", true`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#csv", "the CSV link in Chinese", func(s string) bool { return s == "下载 CSV" })
	waitText(t, ctx, "#about", "the step in Chinese", func(s string) bool { return strings.HasPrefix(s, "每1小时平均") })
}
