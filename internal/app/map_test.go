package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// mapSite is the test site with the Harbin map (config/maps, made by make
// assets) and a screen whose districts are filled by their newest PM2.5
// and whose stations are drawn over them.
func mapSite(t *testing.T) testSite {
	t.Helper()
	site := newSite(t)
	geo, err := os.ReadFile(filepath.Join("..", "..", "config", "maps", "harbin.geojson"))
	if err != nil {
		t.Fatalf("the demo map: %v (make assets makes it)", err)
	}
	files := map[string]string{
		"maps/harbin.geojson": string(geo),
		"screens/city.yaml": `id: city
title: {zh: 城市地图, en: City map}
map: {file: maps/harbin.geojson, key: district, center: [126.64, 45.75], zoom: 4}
panels:
  - id: pm25-map
    title: {zh: 各区PM2.5, en: PM2.5 by district}
    feed: air
    field: pm25
    agg: last
    window: 1h
    stale_after: 4s
    group_by: [district]
    thresholds: {warn: 75, crit: 115}
    view: map
    overlay: stations
  - id: stations
    title: {zh: 监测站, en: Stations}
    feed: air
    field: pm25
    agg: last
    window: 1h
    group_by: [station]
    thresholds: {warn: 75, crit: 115}
    view: map
    position: {lon: lon, lat: lat}
`,
	}
	site.write(t, files)
	return site
}

// region is a district as the chart holds it.
type region struct {
	Name      string `json:"name"`
	ItemStyle struct {
		AreaColor   string  `json:"areaColor"`
		BorderColor string  `json:"borderColor"`
		BorderWidth float64 `json:"borderWidth"`
		BorderType  string  `json:"borderType"`
	} `json:"itemStyle"`
	// Label is what the district's label reads (the labels series).
	Label struct {
		Formatter string `json:"formatter"`
	} `json:"label"`
}

// chartJS is the map panel's ECharts instance in the page.
const chartJS = `echarts.getInstanceByDom(document.querySelector('[data-panel="pm25-map"] .canvas'))`

// regions reads the districts' styles back from the chart.
func regions(t *testing.T, c context.Context) map[string]region {
	t.Helper()
	js := `(() => { const c = ` + chartJS + `; if (!c) return "[]"; const o = c.getOption(); const g = o && o.geo;
		const text = {}; for (const s of o && o.series || []) if (s.id === "labels") for (const d of s.data) text[d.name] = d.text;
		return JSON.stringify((g && g[0].regions || []).map((r) => Object.assign({}, r, {label: {formatter: text[r.name] || ""}}))); })()`
	s, err := chromedp.Run(c, chromedp.Evaluate[string](js))
	if err != nil && !navigating(err) {
		t.Fatal(err)
	}
	var rs []region
	json.Unmarshal([]byte(s), &rs)
	out := map[string]region{}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

// waitRegions polls the districts until ok holds.
func waitRegions(t *testing.T, c context.Context, what string, ok func(map[string]region) bool) map[string]region {
	t.Helper()
	var rs map[string]region
	eventually(t, "the map showed "+what, func() (bool, string) {
		rs = regions(t, c)
		return ok(rs), fmt.Sprintf("%+v", rs)
	})
	return rs
}

// colourAt is the page's fill colour for a share of the scale.
func colourAt(t *testing.T, c context.Context, x float64) string {
	t.Helper()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](fmt.Sprintf(`import("/js/citymap.js").then((m) => m.ramp(%v))`, x), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cssVar(t *testing.T, c context.Context, name string) string {
	t.Helper()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`getComputedStyle(document.documentElement).getPropertyValue("--`+name+`").trim()`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMapInBrowser: the district map in a real browser, in English and in
// Chinese: the nine districts drawn, filled by their live values on the
// scale (a district without data unlike one at 0), a district going crit
// outlined as such at once, a silent one turning stale, stations drawn at
// their positions, what the map cannot place listed beside it, and the
// viewer's zoom kept through frames.
func TestMapInBrowser(t *testing.T) {
	site := mapSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	publish := func(district, station string, pm25 float64, pos string) {
		t.Helper()
		payload := fmt.Sprintf(`{"ts": %d, "pm25": %v%s}`, time.Now().UnixMilli(), pm25, pos)
		if tok := pub.Publish(site.prefix+"/air/"+district+"/"+station, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	districts := []string{"道里区", "南岗区", "道外区", "平房区", "松北区", "香坊区", "呼兰区", "阿城区", "双城区"}

	for _, lang := range []string{"en", "zh"} {
		t.Run(lang, func(t *testing.T) {
			ctx := browser(t, 1920, 1080)
			if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=city&lang="+lang+"#token="+testToken)); err != nil {
				t.Fatal(err)
			}
			title := map[string]string{"en": "City map", "zh": "城市地图"}[lang]
			waitText(t, ctx, "#title", "the screen's title", func(s string) bool { return s == title })
			rs := waitRegions(t, ctx, "the nine districts", func(rs map[string]region) bool {
				for _, d := range districts {
					if _, ok := rs[d]; !ok {
						return false
					}
				}
				return true
			})
			if len(rs) != 18 {
				t.Errorf("%d regions, want Harbin's 9 districts and 9 counties", len(rs))
			}
			// Values: 40 and 0, on a scale from 0 to the crit threshold 115
			// (or, in the second run, to Nangang's 130 of the first, still
			// in the window).
			top := map[string]float64{"en": 115, "zh": 130}[lang]
			publish("daoli", "s1", 40, "")
			publish("songbei", "s2", 0, "")
			rs = waitRegions(t, ctx, "Daoli and Songbei filled", func(rs map[string]region) bool {
				return rs["道里区"].ItemStyle.AreaColor == colourAt(t, ctx, 40/top) && rs["松北区"].ItemStyle.AreaColor == colourAt(t, ctx, 0)
			})
			nodata := rs["呼兰区"] // a labelled district with nothing: not the colour of 0, and dotted
			if nodata.ItemStyle.AreaColor == rs["松北区"].ItemStyle.AreaColor || nodata.ItemStyle.BorderType != "dotted" {
				t.Errorf("a district without data looks like %+v, one at 0 like %+v", nodata.ItemStyle, rs["松北区"].ItemStyle)
			}
			wantLabel := map[string]string{"en": "Daoli\n40", "zh": "道里区\n40"}[lang]
			if rs["道里区"].Label.Formatter != wantLabel {
				t.Errorf("Daoli's label %q, want %q", rs["道里区"].Label.Formatter, wantLabel)
			}
			if !strings.Contains(nodata.Label.Formatter, map[string]string{"en": "Hulan\nno data", "zh": "呼兰区\n无数据"}[lang]) {
				t.Errorf("Hulan's label %q", nodata.Label.Formatter)
			}

			// Hovering (or tapping) a district tells its name, value,
			// status and age.
			tipJS := `(() => { const c = ` + chartJS + `; const px = c.convertToPixel({geoIndex: 0}, [126.5, 45.72]);
				c.dispatchAction({type: "showTip", x: px[0], y: px[1]}); return true; })()`
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](tipJS)); err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{"en": {"Daoli", "40 µg/m³", "ok", "Updated"}, "zh": {"道里区", "40 µg/m³", "正常", "前更新"}}[lang]
			waitText(t, ctx, `[data-panel="pm25-map"] .canvas > div:last-child`, "the tooltip", func(s string) bool {
				for _, w := range want {
					if !strings.Contains(s, w) {
						return false
					}
				}
				return true
			})

			// The viewer zooms in; frames recolour without losing it.
			zoomJS := `(() => { const c = ` + chartJS + `; c.dispatchAction({type: "geoRoam", componentType: "geo", geoIndex: 0, zoom: 2, originX: 400, originY: 300}); return c.getOption().geo[0].zoom; })()`
			zoomed, err := chromedp.Run(ctx, chromedp.Evaluate[float64](zoomJS))
			if err != nil || zoomed != 8 {
				t.Fatalf("zoomed to %v (%v), want 4 x 2", zoomed, err)
			}

			// Nangang goes crit: outlined in the crit colour.
			crit := cssVar(t, ctx, "crit")
			sent := time.Now()
			publish("nangang", "s3", 130, "")
			waitRegions(t, ctx, "Nangang outlined crit", func(rs map[string]region) bool {
				r := rs["南岗区"]
				return r.ItemStyle.BorderColor == crit && r.ItemStyle.AreaColor == colourAt(t, ctx, 1)
			})
			t.Logf("%s: Nangang outlined crit %v after its reading was acknowledged by the broker", lang, time.Since(sent).Round(time.Millisecond))
			if z, err := chromedp.Run(ctx, chromedp.Evaluate[float64](chartJS+`.getOption().geo[0].zoom`)); err != nil || z != zoomed {
				t.Errorf("zoom after frames %v (%v), want %v", z, err, zoomed)
			}

			// Stations: one at its coordinates in Daoli, one in the sea
			// (listed, not drawn), and a district the map does not know.
			publish("daoli", "st-a", 90, `, "lon": 126.617, "lat": 45.756`)
			publish("daoli", "st-sea", 20, `, "lon": 122.0, "lat": 38.5`)
			publish("atlantis", "s9", 12, "")
			pointJS := `(() => { const c = ` + chartJS + `; const o = c.getOption(); const all = o.series[0].data.concat(o.series[1].data);
				const p = all.find(d => d.value[0] === 126.617 && d.value[1] === 45.756); if (!p) return "";
				const px = c.convertToPixel({geoIndex: 0}, [126.617, 45.756]); const box = c.getDom().getBoundingClientRect();
				return JSON.stringify({name: p.name, color: p.itemStyle.color, inside: px[0] > 0 && px[1] > 0 && px[0] < box.width && px[1] < box.height,
					alerting: o.series[1].data.some(d => d === p || (d.value[0] === 126.617 && d.value[1] === 45.756))}); })()`
			var point struct {
				Name, Color      string
				Inside, Alerting bool
			}
			eventually(t, "the station appeared on the map", func() (bool, string) {
				s, err := chromedp.Run(ctx, chromedp.Evaluate[string](pointJS))
				if err != nil {
					t.Fatal(err)
				}
				return s != "" && json.Unmarshal([]byte(s), &point) == nil, s
			})
			if point.Name != "st-a" || point.Color != cssVar(t, ctx, "warn") || !point.Inside || !point.Alerting {
				t.Errorf("the station %+v: want st-a, warn coloured, rippling, inside the chart", point)
			}
			off := waitText(t, ctx, `[data-panel="pm25-map"] .offmap`, "the station in the sea and Atlantis listed", func(s string) bool {
				return strings.Contains(s, "st-sea") && strings.Contains(s, "atlantis")
			})
			if !strings.Contains(off, map[string]string{"en": "Not on the map", "zh": "不在地图上"}[lang]) {
				t.Errorf("beside the map: %q", off)
			}

			// Daoli falls silent: stale after 4 s, dashed and greyed.
			stale := cssVar(t, ctx, "stale")
			waitRegions(t, ctx, "Daoli stale", func(rs map[string]region) bool {
				r := rs["道里区"]
				return r.ItemStyle.BorderType == "dashed" && r.ItemStyle.BorderColor == stale
			})
			screenshot(t, ctx, "map-"+lang)
		})
	}
}

// TestMapOnPhone: at 390 px the summary ranks a map panel's districts,
// each with its bar, in the page's language, and names the districts
// without data; nothing is wider than the phone.
func TestMapOnPhone(t *testing.T) {
	site := mapSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	// Published every second, so that the panel stays fresh (stale_after
	// 4s) however long the browser takes.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			for d, v := range map[string]float64{"daoli": 40, "nangang": 130, "songbei": 0} {
				pub.Publish(site.prefix+"/air/"+d+"/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": %v}`, time.Now().UnixMilli(), v)).Wait()
			}
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	for _, c := range []struct{ lang, first, none string }{
		{"en", "Nangang", "Districts without data: Hulan"},
		{"zh", "南岗区", "无数据的区域：呼兰区"},
	} {
		ctx := browser(t, 390, 844)
		if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"summary.html?screen=city&lang="+c.lang+"#token="+testToken)); err != nil {
			t.Fatal(err)
		}
		waitText(t, ctx, `[data-panel="pm25-map"] li.ranked .name`, "the crit district first", func(s string) bool { return s == c.first })
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([...document.querySelectorAll('[data-panel="pm25-map"] li.ranked')].map(li => li.className + ":" + li.querySelector(".name").textContent))`))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"en": `["ranked crit:Nangang","ranked ok:Daoli","ranked ok:Songbei"]`, "zh": `["ranked crit:南岗区","ranked ok:道里区","ranked ok:松北区"]`}[c.lang]; rows != want {
			t.Errorf("%s: ranked %s, want %s", c.lang, rows, want)
		}
		waitText(t, ctx, `[data-panel="pm25-map"] .nodata`, "the districts without data", func(s string) bool { return s == c.none })
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
		if err != nil || overflow > 0 {
			t.Errorf("%s: %d px wider than the phone (%v)", c.lang, overflow, err)
		}
		screenshot(t, ctx, "summary-map-"+c.lang)
	}
}
