package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A stream is what citybench publishes: the feeds and the screen it gives
// cityscreen, and each numbered reading's topic and payload. Every reading
// carries its number (seq, counted in InfluxDB) and its publish time in ms
// (sent, which a "sent…" panel of the screen shows the clients).
type stream struct {
	// files are cityscreen's feed and screen files for a run.
	files func(id string) map[string]string
	// topic and payload of reading n (from 1) on publishing connection c.
	topic   func(id string, n int64, c int) string
	payload func(dst []byte, n int64, now time.Time) []byte
	// seqPanels are the screen's panels whose value is the highest
	// reading number of a feed: reading n is its feed's
	// seqPanels[n%len(seqPanels)], so a frame whose panel shows m
	// reflects each of that feed's readings up to m.
	seqPanels []string
}

var streams = map[string]stream{"city": cityStream, "minimal": minimalStream}

// districts are Harbin's nine districts.
var districts = []string{"daoli", "nangang", "daowai", "pingfang", "songbei", "xiangfang", "hulan", "acheng", "shuangcheng"}

// cityStream is modelled on the city's own feeds (config/feeds): air
// quality stations, road detectors and heating substations, one reading in
// three each, from 9 districts and 20 stations, roads or substations in
// each, as JSON with the fields and nesting those feeds have.
var cityStream = stream{
	files: func(id string) map[string]string {
		return map[string]string{
			"feeds/bench-air.yaml": benchFeed(id, "air", "station", `
  pm25: {type: float, min: 0, max: 1000}
  pm10: {type: float, min: 0, max: 2000}
  no2: {type: float, min: 0, max: 2000, optional: true}
  aqi: {type: int, min: 0, max: 500}
tags:
  source: {path: meta.source}
`),
			"feeds/bench-traffic.yaml": benchFeed(id, "traffic", "road", `
  congestion: {path: congestion_index, type: float, min: 0, max: 10}
  speed: {path: speed_kmh, type: float, min: 0, max: 200}
  volume: {path: vehicles_per_min, type: int, min: 0}
`),
			"feeds/bench-heating.yaml": benchFeed(id, "heating", "substation", `
  supply_temp: {type: float, min: -40, max: 150}
  return_temp: {type: float, min: -40, max: 150}
  pressure: {type: float, min: 0, max: 4}
tags:
  plant: {path: meta.plant}
`),
			"screens/bench.yaml": `id: bench
panels:
  - {id: sent-air, feed: bench-air, field: sent, agg: last, window: 1m, stale_after: 1m}
  - {id: sent-traffic, feed: bench-traffic, field: sent, agg: last, window: 1m, stale_after: 1m}
  - {id: sent-heating, feed: bench-heating, field: sent, agg: last, window: 1m, stale_after: 1m}
  - {id: seq-air, feed: bench-air, field: seq, agg: max, window: 1m, stale_after: 1m}
  - {id: seq-traffic, feed: bench-traffic, field: seq, agg: max, window: 1m, stale_after: 1m}
  - {id: seq-heating, feed: bench-heating, field: seq, agg: max, window: 1m, stale_after: 1m}
  - {id: aqi-max, feed: bench-air, field: aqi, agg: max, window: 5m}
  - {id: pm25-p95, feed: bench-air, field: pm25, agg: p95, window: 15m}
  - {id: pm25-by-district, feed: bench-air, field: pm25, agg: mean, window: 5m, group_by: [district]}
  - {id: congestion-by-district, feed: bench-traffic, field: congestion, agg: mean, window: 5m, group_by: [district]}
  - {id: traffic-rate, feed: bench-traffic, agg: rate, per: 1m, window: 5m}
  - {id: supply-by-district, feed: bench-heating, field: supply_temp, agg: min, window: 10m, group_by: [district]}
`,
		}
	},
	seqPanels: []string{"seq-air", "seq-traffic", "seq-heating"},
	topic: func(id string, n int64, _ int) string {
		kind := [...]string{"air", "traffic", "heating"}[n%3]
		place := n / 3
		return "bench/" + id + "/" + kind + "/" + districts[place%9] + "/s" + strconv.FormatInt(place/9%20, 10)
	},
	payload: func(dst []byte, n int64, now time.Time) []byte {
		ns, ms := now.UnixNano(), float64(now.UnixNano())/1e6
		v := float64(n % 97)
		switch n % 3 {
		case 0:
			return fmt.Appendf(dst, `{"ts":%d,"seq":%d,"sent":%.3f,"pm25":%.1f,"pm10":%.1f,"no2":%.1f,"aqi":%d,"meta":{"source":"sepb","firmware":"2.3.1"}}`,
				ns, n, ms, 12+v*0.9, 30+v*1.3, 8+v*0.4, 20+n%180)
		case 1:
			return fmt.Appendf(dst, `{"ts":%d,"seq":%d,"sent":%.3f,"congestion_index":%.1f,"speed_kmh":%.1f,"vehicles_per_min":%d,"lanes":3}`,
				ns, n, ms, 1+v/11, 15+v*0.6, 5+n%60)
		default:
			return fmt.Appendf(dst, `{"ts":%d,"seq":%d,"sent":%.3f,"supply_temp":%.1f,"return_temp":%.1f,"pressure":%.2f,"meta":{"plant":"harbin-thermal-%d"}}`,
				ns, n, ms, 70+v/5, 40+v/6, 0.4+v/300, 1+n%4)
		}
	},
}

// benchFeed is the city stream's feed of one kind of reading, from run id:
// its topic names the district and the place, and rest follows its seq and
// sent fields (more fields, then tags).
func benchFeed(id, kind, place, rest string) string {
	return fmt.Sprintf(`id: bench-%[2]s
topic: bench/%[1]s/%[2]s/{district}/{%[3]s}
measurement: bench_%[1]s_%[2]s
time: {path: ts, layout: unix_ns}
fields:
  seq: {type: int}
  sent: {type: float}`, id, kind, place) + rest
}

// writeFiles writes cityscreen's configuration for run id of the stream
// into dir: an empty main file (the environment sets the rest), the
// stream's feeds and its screen.
func (st stream) writeFiles(dir, id string) error {
	files := st.files(id)
	files["cityscreen.yaml"] = ""
	for f, body := range files {
		path := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// minimalStream is one feed of three fields, the reading as small as it
// can be: what citybench published before the city stream.
var minimalStream = stream{
	files: func(id string) map[string]string {
		return map[string]string{
			"feeds/bench.yaml": fmt.Sprintf(`id: bench
topic: bench/%[1]s/{conn}
measurement: bench_%[1]s
time: {path: ts, layout: unix_ns}
fields:
  seq: {type: int}
  sent: {type: float}
`, id),
			"screens/bench.yaml": `id: bench
panels:
  - {id: sent, feed: bench, field: sent, agg: last, window: 1m, stale_after: 1m}
  - {id: count, feed: bench, agg: count, window: 1m, stale_after: 1m}
  - {id: seq, feed: bench, field: seq, agg: max, window: 1m, stale_after: 1m}
`,
		}
	},
	seqPanels: []string{"seq"},
	topic:     func(id string, _ int64, c int) string { return "bench/" + id + "/c" + strconv.Itoa(c) },
	payload: func(dst []byte, n int64, now time.Time) []byte {
		return fmt.Appendf(dst, `{"seq":%d,"ts":%d,"sent":%.3f}`, n, now.UnixNano(), float64(now.UnixNano())/1e6)
	},
}

// isBenchFeed tells a metric line of one of the stream's feeds.
func isBenchFeed(key string) bool { return strings.Contains(key, `{feed="bench`) }
