package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// demoSite is the shipped Harbin configuration (feeds, screens, labels and
// the map) under a test's own state and broker.
func demoSite(t *testing.T) testSite {
	t.Helper()
	site := testSite{dir: t.TempDir()}
	src := filepath.Join("..", "..", "config")
	files := map[string]string{"cityscreen.yaml": "hub:\n  coalesce: 50ms\ninflux:\n  flush_interval: 100ms\n"}
	for _, pattern := range []string{"feeds/*.yaml", "screens/*.yaml", "playlists/*.yaml", "labels.yaml", "maps/harbin.geojson"} {
		paths, _ := filepath.Glob(filepath.Join(src, pattern))
		if len(paths) == 0 {
			t.Fatalf("no %s in config/ (make assets makes the map)", pattern)
		}
		for _, f := range paths {
			rel, _ := filepath.Rel(src, f)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			files[rel] = string(data)
		}
	}
	site.write(t, files)
	return site
}

// simulate runs the Harbin simulator against a broker for a while.
func simulate(t *testing.T, broker string, rate int, d time.Duration) {
	t.Helper()
	cmd := exec.Command("go", "run", "../../cmd/citysim", "-broker", broker, "-rate", fmt.Sprint(rate), "-duration", d.String(), "-seed", "7")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("citysim: %v\n%s", err, out)
	}
}

// boxesJS measures the wall: every tile inside the grid, no two tiles
// overlapping, nothing in a tile cut (its content, its title, its value)
// and nothing scrolled.
const boxesJS = `(() => {
	const grid = document.getElementById("grid").getBoundingClientRect();
	const tiles = [...document.querySelectorAll("#grid .tile")];
	const problems = [];
	const r = tiles.map((el) => [el.dataset.panel, el.getBoundingClientRect(), el]);
	for (const [id, b, el] of r) {
		if (b.left < grid.left - 1 || b.top < grid.top - 1 || b.right > grid.right + 1 || b.bottom > grid.bottom + 1) problems.push(id + " outside the grid");
		if (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1) problems.push(id + " content cut");
		const h = el.querySelector("h2");
		if (h.scrollWidth > h.clientWidth + 1) problems.push(id + " title cut: " + h.textContent);
		const v = el.querySelector(".value");
		if (v && v.scrollWidth > v.clientWidth + 1) problems.push(id + " value cut: " + v.textContent);
		const m = el.querySelector(".meta");
		if (m.scrollWidth > m.clientWidth + 1) problems.push(id + " meta cut: " + m.textContent);
		const c = el.querySelector(".chart");
		if (c.getBoundingClientRect().height < 8) problems.push(id + " chart squeezed to " + c.getBoundingClientRect().height + " px");
	}
	for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) {
		const a = r[i][1], b = r[j][1];
		if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) problems.push(r[i][0] + " overlaps " + r[j][0]);
	}
	const d = document.documentElement;
	if (d.scrollHeight > innerHeight || d.scrollWidth > innerWidth) problems.push("the page scrolls: " + d.scrollWidth + "x" + d.scrollHeight);
	let area = 0;
	for (const [, b] of r) area += b.width * b.height;
	return JSON.stringify({tiles: tiles.length, problems, covered: area / (grid.width * grid.height)});
})()`

// TestWallLayout: the demo's main wall, laid out around the map, at
// 1920x1080 and 3840x2160, in Chinese and English, with the simulator's
// readings: every panel placed, nothing outside its place, overlapping,
// cut or scrolled, and no holes.
func TestWallLayout(t *testing.T) {
	site := demoSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	simulate(t, broker, 300, 8*time.Second)
	for _, size := range [][2]int{{1920, 1080}, {3840, 2160}} {
		for _, lang := range []string{"zh", "en"} {
			name := fmt.Sprintf("%dx%d-%s", size[0], size[1], lang)
			t.Run(name, func(t *testing.T) {
				ctx := browser(t, size[0], size[1])
				if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(int64(size[0]), int64(size[1]))); err != nil {
					t.Fatal(err)
				}
				if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=city-overview&lang="+lang+"#token="+testToken)); err != nil {
					t.Fatal(err)
				}
				title := map[string]string{"zh": "哈尔滨城市运行监测", "en": "Harbin city operations"}[lang]
				waitText(t, ctx, "#title", "the title", func(s string) bool { return s == title })
				waitRegionsOf(t, ctx, "pm25-by-district", 18)
				// Every tile's chart drawn (they are drawn a few per animation
				// frame, within a budget).
				waitJS(t, ctx, "every chart drawn", `[...document.querySelectorAll("#grid .tile")].every((el) => {
					const c = echarts.getInstanceByDom(el.querySelector(".canvas") || el.querySelector(".chart"));
					const o = c && c.getOption();
					return !!(o && o.series && o.series.some((s) => (s.data || []).length)); })`)
				time.Sleep(500 * time.Millisecond) // fonts and the last frame settle
				s, err := chromedp.Run(ctx, chromedp.Evaluate[string](boxesJS))
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					Tiles    int
					Problems []string
					Covered  float64
				}
				json.Unmarshal([]byte(s), &got)
				// 19 panels; the stations are drawn over the map, not in a tile of their own.
				if got.Tiles != 18 || len(got.Problems) > 0 {
					t.Errorf("%d tiles (want 18); problems:\n%s", got.Tiles, strings.Join(got.Problems, "\n"))
				}
				// The tiles cover the grid but for the gaps between them (1 vh).
				if got.Covered < 0.85 {
					t.Errorf("the tiles cover %.0f%% of the grid: holes", got.Covered*100)
				}
				// No English word on the Chinese wall, but for units and IDs,
				// and no Chinese on the English one: the page's text and what
				// the charts draw (the map's labels, the bars' names).
				text, err := chromedp.Run(ctx, chromedp.Evaluate[string](wallTextJS))
				if err != nil {
					t.Fatal(err)
				}
				if w := englishWords(text); lang == "zh" && len(w) > 0 {
					t.Errorf("English on the Chinese wall: %v", w)
				}
				if c := cjk.FindAllString(text, -1); lang == "en" && len(c) > 0 {
					t.Errorf("Chinese on the English wall: %v", c)
				}
				screenshot(t, ctx, "wall-"+name)
			})
		}
	}
}

// wallTextJS is every text of the wall: the page's, and what its charts
// draw on their canvases.
const wallTextJS = `(() => {
	const texts = [document.body.innerText];
	for (const el of document.querySelectorAll("#grid .tile")) {
		const c = echarts.getInstanceByDom(el.querySelector(".canvas") || el.querySelector(".chart"));
		const o = c && c.getOption();
		if (!o) continue;
		for (const g of o.geo || []) for (const r of g.regions || []) if (r.label) texts.push(r.label.formatter);
		for (const a of o.xAxis || []) for (const d of a.data || []) texts.push(typeof d === "string" ? d : d.value);
		for (const s of o.series || []) for (const d of s.data || []) if (d && (d.text || d.name)) texts.push(d.text || d.name);
	}
	return texts.join("\n");
})()`

var cjk = regexp.MustCompile(`\p{Han}+`)

// englishWords lists the words of Latin letters in text that are not
// units, IDs or the names of measures (AQI, PM2.5) people read as they are.
func englishWords(text string) []string {
	allowed := map[string]bool{"AQI": true, "PM": true, "µg": true, "m": true, "km": true, "cm": true, "s": true, "min": true,
		"h": true, "MPa": true, "veh": true, "C": true}
	var out []string
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == 'µ') }) {
		if !allowed[f] {
			out = append(out, f)
		}
	}
	return out
}

// waitRegionsOf waits for a map panel to draw n regions.
func waitRegionsOf(t *testing.T, ctx context.Context, panel string, n int) {
	t.Helper()
	waitJS(t, ctx, fmt.Sprintf("%s with %d regions", panel, n), fmt.Sprintf(`(() => { const c = echarts.getInstanceByDom(document.querySelector('[data-panel=%q] .canvas')); const o = c && c.getOption(); return !!(o && o.geo && o.geo[0].regions.length === %d); })()`, panel, n))
}
