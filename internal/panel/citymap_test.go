package panel

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/citymap"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// twoDistricts is a map of two unit squares side by side: west (0-1) and
// east (1-2), at longitude 0-2, latitude 0-1.
func twoDistricts(t *testing.T) *citymap.Map {
	t.Helper()
	sq := func(x0 int) string {
		return `{"type":"Polygon","coordinates":[[[` + itoa(x0) + `,0],[` + itoa(x0+1) + `,0],[` + itoa(x0+1) + `,1],[` + itoa(x0) + `,1],[` + itoa(x0) + `,0]]]}`
	}
	m, err := citymap.Parse([]byte(`{"type":"FeatureCollection","features":[`+
		`{"type":"Feature","properties":{"name":"西区"},"geometry":`+sq(0)+`},`+
		`{"type":"Feature","properties":{"name":"东区"},"geometry":`+sq(1)+`}]}`), "name")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func itoa(i int) string { return string(rune('0' + i)) }

var airFeeds = map[string]feed.Spec{"air": {ID: "air", Topic: "air/{district}/{station}", Format: feed.FormatJSON,
	Fields: map[string]feed.FieldSpec{"pm25": {Path: "pm25", Type: feed.TypeFloat}, "lon": {Path: "lon", Type: feed.TypeFloat}, "lat": {Path: "lat", Type: feed.TypeFloat}},
	Labels: feed.Labels{"district": {"west": {ByLang: map[string]string{"zh": "西区", "en": "West"}}}}}}

func TestValidateMapAndLayout(t *testing.T) {
	geo := &MapSpec{File: "m.geojson"}
	place := func(c, r, w, h int) *Place { return &Place{Col: c, Row: r, Width: w, Height: h} }
	mapPanel := Spec{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"district"}, View: ViewMap}
	for _, c := range []struct {
		name   string
		screen ScreenSpec
		want   string // "" for no problem
	}{
		{"map panel", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{mapPanel}}, ""},
		{"no map", ScreenSpec{ID: "s", Panels: []Spec{mapPanel}}, "panels.0.view: view: map needs the screen's map"},
		{"ungrouped", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, View: ViewMap}}}, "panels.0.group_by: view: map draws groups"},
		{"grouped by another tag", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"station"}, View: ViewMap}}}, `filled by the map's key "district"`},
		{"stations", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"station"}, View: ViewMap, Position: &Position{Lon: "lon", Lat: "lat"}}}}, ""},
		{"half a position", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"station"}, View: ViewMap, Position: &Position{Lon: "lon"}}}}, "panels.0.position: needs both lon and lat"},
		{"unknown view", ScreenSpec{ID: "s", Panels: []Spec{{ID: "m", Feed: "air", Agg: AggCount, View: "globe"}}}, `panels.0.view: "globe": want map`},
		{"overlay of a number", ScreenSpec{ID: "s", Map: geo, Panels: []Spec{func() Spec { p := mapPanel; p.Overlay = "n"; return p }(), {ID: "n", Feed: "air", Agg: AggCount}}}, `panel "n" is not a map of stations`},
		{"overlay on bars", ScreenSpec{ID: "s", Panels: []Spec{{ID: "n", Feed: "air", Agg: AggCount, Overlay: "m"}}}, "panels.0.overlay: applies to view: map"},
		{"bad title", ScreenSpec{ID: "s", Title: feed.Text{ByLang: map[string]string{"fr": "Ville"}}, Panels: []Spec{{ID: "n", Feed: "air", Agg: AggCount}}}, `title: language "fr": want zh or en`},
		{"laid out", ScreenSpec{ID: "s", Layout: &Layout{Columns: 2, Rows: 1}, Panels: []Spec{{ID: "a", Feed: "air", Agg: AggCount, Place: place(1, 1, 1, 1)}, {ID: "b", Feed: "air", Agg: AggCount, Place: place(2, 1, 1, 1)}}}, ""},
		{"no place", ScreenSpec{ID: "s", Layout: &Layout{Columns: 2, Rows: 1}, Panels: []Spec{{ID: "a", Feed: "air", Agg: AggCount, Place: place(1, 1, 1, 1)}, {ID: "b", Feed: "air", Agg: AggCount}}}, "panels.1.place: every panel of a screen with a layout needs its place"},
		{"overlap", ScreenSpec{ID: "s", Layout: &Layout{Columns: 2, Rows: 2}, Panels: []Spec{{ID: "a", Feed: "air", Agg: AggCount, Place: place(1, 1, 2, 2)}, {ID: "b", Feed: "air", Agg: AggCount, Place: place(2, 2, 1, 1)}}}, "panels.1.place: overlaps panel a at column 2, row 2"},
		{"outside", ScreenSpec{ID: "s", Layout: &Layout{Columns: 2, Rows: 2}, Panels: []Spec{{ID: "a", Feed: "air", Agg: AggCount, Place: place(2, 1, 2, 1)}}}, "outside the 2x2 grid"},
		{"place without layout", ScreenSpec{ID: "s", Panels: []Spec{{ID: "a", Feed: "air", Agg: AggCount, Place: place(1, 1, 1, 1)}}}, "panels.0.place: needs the screen's layout"},
	} {
		ps := c.screen.WithDefaults().Validate(airFeeds)
		var msgs []string
		for _, p := range ps {
			msgs = append(msgs, p.String())
		}
		got := strings.Join(msgs, "; ")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	holes := ScreenSpec{ID: "s", Layout: &Layout{Columns: 2, Rows: 2}, Panels: []Spec{{ID: "a", Place: &Place{Col: 1, Row: 1, Width: 2}}, {ID: "b", Place: &Place{Col: 1, Row: 2}}}}.Holes()
	if len(holes) != 1 || holes[0] != "column 2, row 2" {
		t.Errorf("holes %v", holes)
	}
}

func TestMetaMatchesFeatures(t *testing.T) {
	s := ScreenSpec{ID: "s", Title: feed.Text{ByLang: map[string]string{"zh": "城市", "en": "City"}},
		Map:    &MapSpec{File: "m.geojson", Key: "district", Name: "name", Geo: twoDistricts(t)},
		Labels: feed.Labels{"district": {"nowhere": feed.PlainText("无此区")}},
		Panels: []Spec{{ID: "m", Feed: "air", Field: "pm25", Agg: AggMean, GroupBy: []string{"district"}, View: ViewMap}}}
	city := feed.Labels{"district": {"east": {ByLang: map[string]string{"zh": "东区", "en": "East"}}, "west": feed.PlainText("overridden by the feed")}}
	m := Meta(s, airFeeds, city)
	if m.Title != "城市" || m.Titles["en"] != "City" {
		t.Errorf("title %q %v", m.Title, m.Titles)
	}
	if m.Map == nil || m.Map.URL != "/api/screens/s/map" || len(m.Map.Features) != 2 {
		t.Fatalf("map %+v", m.Map)
	}
	// west through the feed's label, east through the city's; nowhere names nothing.
	if m.Map.Match["west"] != "西区" || m.Map.Match["east"] != "东区" || len(m.Map.Match) != 2 {
		t.Errorf("match %v", m.Map.Match)
	}
	if m.Map.Extent != [4]float64{0, 0, 2, 1} {
		t.Errorf("extent %v", m.Map.Extent)
	}
	if got := UnmatchedLabels(s, airFeeds, city); len(got) != 1 || got[0] != "nowhere (无此区)" {
		t.Errorf("unmatched %v", got)
	}
	// The pages sort by the order the meta carries.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"statuses":["crit","warn","stale","ok","nodata"]`) {
		t.Errorf("meta %s does not carry the statuses by rank", b)
	}
}

func TestStationPositions(t *testing.T) {
	geo := twoDistricts(t)
	stations := Spec{ID: "st", Feed: "air", Field: "pm25", Agg: AggLast, GroupBy: []string{"station"}, View: ViewMap, Position: &Position{Lon: "lon", Lat: "lat"}}
	filed := Spec{ID: "sf", Feed: "air", Field: "pm25", Agg: AggLast, GroupBy: []string{"station"}, View: ViewMap, Stations: "stations.yaml",
		StationPos: map[string]Station{"a": {Lon: 1.5, Lat: 0.5}, "b": {Lon: 5, Lat: 5}}}
	clock := &fakeClock{t: start}
	e := New([]ScreenSpec{{ID: "s", Map: &MapSpec{File: "m", Geo: geo}, Panels: []Spec{stations, filed}}}, &recordingSink{},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), Options{Now: clock.Now})
	reading := func(station string, lon, lat float64) feed.Point {
		f := func(x float64) lineprotocol.Value { v, _ := lineprotocol.FloatValue(x); return v }
		p := feed.Point{Measurement: "air", Tags: []feed.Tag{{Key: "station", Value: station}}, Time: start,
			Fields: []feed.Field{{Key: "lat", Value: f(lat)}, {Key: "lon", Value: f(lon)}, {Key: "pm25", Value: f(40)}}}
		return p
	}
	e.Observe("air", []feed.Point{reading("a", 0.5, 0.5), reading("b", 3, 0.5), reading("c", 999, 0.5)})
	byStation := func(v View) map[string]GroupView {
		out := map[string]GroupView{}
		for _, g := range v.Groups {
			out[g.Tags["station"]] = g
		}
		return out
	}
	g := byStation(viewOf(t, e, "st"))
	if p := g["a"].Pos; p == nil || *p != [2]float64{0.5, 0.5} || g["a"].OffMap {
		t.Errorf("a: %+v", g["a"])
	}
	if p := g["b"].Pos; p == nil || !g["b"].OffMap {
		t.Errorf("b, in the sea, must be off the map: %+v", g["b"])
	}
	if g["c"].Pos != nil {
		t.Errorf("c has no position in range: %+v", g["c"])
	}
	// The stations file: a on the map (east), b off it, c unknown.
	g = byStation(viewOf(t, e, "sf"))
	if p := g["a"].Pos; p == nil || *p != [2]float64{1.5, 0.5} || g["a"].OffMap {
		t.Errorf("filed a: %+v", g["a"])
	}
	if !g["b"].OffMap || g["c"].Pos != nil {
		t.Errorf("filed b %+v, c %+v", g["b"], g["c"])
	}
}

// TestReloadKeepsMapPanels: the map loaded again (a reload) is the same
// map, and its panels keep their values.
func TestReloadKeepsMapPanels(t *testing.T) {
	spec := Spec{ID: "m", Feed: "air", Field: "pm25", Agg: AggLast, GroupBy: []string{"district"}, View: ViewMap}
	screen := func() []ScreenSpec {
		return []ScreenSpec{{ID: "s", Map: &MapSpec{File: "m", Geo: twoDistricts(t)}, Panels: []Spec{spec}}}
	}
	clock := &fakeClock{t: start}
	e := New(screen(), &recordingSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), Options{Now: clock.Now})
	e.Observe("air", []feed.Point{point(start, "west", 40)})
	if _, changed, _ := e.SetScreens(screen(), nil); len(changed) != 0 {
		t.Errorf("the same map loaded again changed the screen: %v", changed)
	}
	if v := viewOf(t, e, "m"); len(v.Groups) != 1 || v.Groups[0].Value != 40 {
		t.Errorf("after the reload: %+v", v.Groups)
	}
}

// TestStatusRank: crit needs attention first, then warn, stale, ok and
// nodata, the order every list of statuses follows (and live.js's rank).
func TestStatusRank(t *testing.T) {
	order := []Status{StatusCrit, StatusWarn, StatusStale, StatusOK, StatusNoData, Status("unknown")}
	for i := 1; i < len(order); i++ {
		if order[i-1].Rank() >= order[i].Rank() {
			t.Errorf("%s ranks %d, not before %s (%d)", order[i-1], order[i-1].Rank(), order[i], order[i].Rank())
		}
	}
}
