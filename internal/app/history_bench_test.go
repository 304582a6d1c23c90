package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// BenchmarkHistory: GET .../history of a panel over 30 days at 1-hour
// steps and over a year at 1-day steps, against the real InfluxDB, with
// the rollups a year of readings leaves: it writes them itself, made by a
// panel engine of the same screen whose clock walks the year an hour at a
// time (a reading per district per hour; the rollups' count is what the
// query reads, not the readings'). Reported: the p50 and p95 of the
// requests' time, from the request to the whole answer read, and the
// size of a rollup point of the panel in line protocol (before InfluxDB
// compresses it).
//
//	CITYSCREEN_TEST_INFLUX_URL=http://127.0.0.1:8086 go test ./internal/app -run '^$' -bench History -benchtime 50x
func BenchmarkHistory(b *testing.B) {
	site := newSite(b)
	site.write(b, map[string]string{"screens/test.yaml": `id: test
time_zone: Asia/Shanghai
panels:
  - {id: mean, feed: air, field: pm25, agg: mean, window: 1h}
  - {id: by-district, feed: air, field: pm25, agg: mean, window: 1h, group_by: [district]}
  - {id: p95, feed: air, field: pm25, agg: p95, window: 1h}
`})
	influxURL := env(b, "CITYSCREEN_TEST_INFLUX_URL")
	cfg, err := config.Load(filepath.Join(site.dir, "cityscreen.yaml"), map[string]string{"CITYSCREEN_INFLUX_URL": influxURL})
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Truncate(time.Hour)
	clock := end.AddDate(-1, 0, -1)
	eng := panel.New(cfg.Screens, nopSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		panel.Options{Now: func() time.Time { return clock }, Run: "bench/1", Rollups: cfg.History.Rollups})
	client := influxdb2.NewClient(influxURL, "")
	defer client.Close()
	write := client.WriteAPIBlocking("-", "city/autogen")
	districts := []string{"daoli", "nangang", "daowai", "xiangfang", "pingfang", "songbei", "hulan", "acheng", "shuangcheng"}
	var lines []string
	flush := func() {
		if err := write.WriteRecord(context.Background(), lines...); err != nil {
			b.Fatal(err)
		}
		lines = lines[:0]
	}
	hours := 0
	lineBytes, linePoints := map[string]int{}, map[string]int{} // by panel
	for ; clock.Before(end); clock = clock.Add(time.Hour) {
		var batch []feed.Point
		for i, d := range districts {
			v, _ := lineprotocol.FloatValue(float64(20 + (hours*7+i*13)%120))
			batch = append(batch, feed.Point{Measurement: site.airM, Time: clock.Add(-time.Duration(i+1) * time.Second),
				Tags: []feed.Tag{{Key: "district", Value: d}, {Key: "station", Value: "s1"}}, Fields: []feed.Field{{Key: "pm25", Value: v}}})
		}
		eng.Observe("air", batch)
		for _, pt := range eng.Rollups() {
			if strings.Contains(pt.Tags[slices.IndexFunc(pt.Tags, func(t feed.Tag) bool { return t.Key == "res" })].Value, "1m") {
				continue // minutes: not what these ranges read
			}
			var enc lineprotocol.Encoder
			pt.AppendLine(&enc)
			lines = append(lines, strings.TrimSpace(string(enc.Bytes())))
			panelOf := pt.Tags[slices.IndexFunc(pt.Tags, func(t feed.Tag) bool { return t.Key == "panel" })].Value
			lineBytes[panelOf] += len(enc.Bytes())
			linePoints[panelOf]++
		}
		if len(lines) >= 5000 {
			flush()
		}
		hours++
	}
	flush()
	vars, _ := withEmbeddedBroker(b, nil)
	a, stop := launch(b, site, vars)
	defer stop()
	for _, c := range []struct{ name, query string }{
		{"30d-1h/mean", "mean/history?from=-30d&step=1h"},
		{"30d-1h/by-district", "by-district/history?from=-30d&step=1h"},
		{"30d-1h/p95", "p95/history?from=-30d&step=1h"},
		{"1y-1d/mean", "mean/history?from=-365d&step=1d"},
		{"1y-1d/by-district", "by-district/history?from=-365d&step=1d"},
		{"1y-1d/p95", "p95/history?from=-365d&step=1d"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			points := 0
			for b.Loop() {
				req, _ := http.NewRequest("GET", a.URL()+"api/screens/test/panels/"+c.query, nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				began := time.Now()
				resp, err := testClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took = append(took, time.Since(began))
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%d %s", resp.StatusCode, body)
				}
				points = strings.Count(string(body), "],[") + strings.Count(string(body), `"points":[[`)
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(points), "points")
			id := strings.Split(c.query, "/")[0]
			b.ReportMetric(float64(lineBytes[id])/float64(linePoints[id]), "line-bytes/rollup")
		})
	}
}
