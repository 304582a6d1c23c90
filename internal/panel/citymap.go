package panel

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cityscreen/cityscreen/internal/citymap"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Views a panel may have.
const (
	ViewDefault = ""    // a number with its trend, or bars by group
	ViewMap     = "map" // groups drawn on the screen's map
	// ViewList lists a case panel's cases: the overdue, most overdue
	// first, or those due soon, soonest first.
	ViewList = "list"
)

// MapSpec names a screen's map: a GeoJSON file of the city's districts.
type MapSpec struct {
	// File is the GeoJSON FeatureCollection, relative to the main config
	// file's folder (maps/harbin.geojson).
	File string `yaml:"file" json:"file"`
	// Key is the tag whose values name the map's features; empty means
	// district. A value names a feature by itself or through its labels.
	Key string `yaml:"key" json:"key"`
	// Name is the feature property that holds each feature's name; empty
	// means name.
	Name string `yaml:"name" json:"name"`
	// Attribution is shown under the map (required by some boundary
	// licences: "© OpenStreetMap contributors"); empty means none.
	Attribution string `yaml:"attribution" json:"attribution,omitempty"`
	// Center ([longitude, latitude]) and Zoom (1 shows the whole map, 2
	// twice as close) frame the map when a page opens it; empty means the
	// whole map. Viewers may zoom and pan from there.
	Center []float64 `yaml:"center" json:"center,omitempty"`
	Zoom   float64   `yaml:"zoom" json:"zoom,omitempty"`
	// Geo is File as loaded (by config).
	Geo *citymap.Map `yaml:"-" json:"-"`
}

// Layout is a grid the wall is cut into; each panel takes a rectangle
// of its cells (Place). The grid fills the wall, whatever its size.
type Layout struct {
	// Columns and Rows of the grid: 1 to 48 each.
	Columns int `yaml:"columns" json:"columns"`
	Rows    int `yaml:"rows" json:"rows"`
}

// Place is a panel's rectangle in the grid: from column Col and row Row
// (counted from 1 at the top left), Width columns wide and Height rows
// high; 0 means 1.
type Place struct {
	Col    int `yaml:"col" json:"col"`
	Row    int `yaml:"row" json:"row"`
	Width  int `yaml:"width" json:"width"`
	Height int `yaml:"height" json:"height"`
}

// Position names the fields of a feed's readings that hold a station's
// position, in degrees.
type Position struct {
	Lon string `yaml:"lon" json:"lon"`
	Lat string `yaml:"lat" json:"lat"`
}

// Station is one entry of a stations file.
type Station struct {
	Lon  float64   `yaml:"lon" json:"lon"`
	Lat  float64   `yaml:"lat" json:"lat"`
	Name feed.Text `yaml:"name" json:"name,omitzero"`
}

// validateMap checks the screen's map settings and its map panels.
func (s ScreenSpec) validateMap(add func(key, f string, a ...any)) {
	if m := s.Map; m != nil {
		if m.File == "" {
			add("map.file", "is required: the GeoJSON file of the city's districts")
		}
		if len(m.Center) != 0 && (len(m.Center) != 2 || m.Center[0] < -180 || m.Center[0] > 180 || m.Center[1] < -90 || m.Center[1] > 90) {
			add("map.center", "want [longitude, latitude] in degrees")
		}
		if m.Zoom < 0 || m.Zoom > 100 {
			add("map.zoom", "want 1 (the whole map) to 100")
		}
	}
	for i, p := range s.Panels {
		key := fmt.Sprintf("panels.%d", i)
		if p.Overlay != "" && p.View != ViewMap {
			add(key+".overlay", "applies to view: map")
		}
		switch p.View {
		case ViewDefault:
			if p.Position != nil || p.Stations != "" {
				add(key+".view", "position and stations apply to view: map")
			}
			continue
		case ViewMap:
		case ViewList:
			switch {
			case p.Agg != AggOverdue && p.Agg != AggDueSoon:
				add(key+".view", "a list shows the cases of overdue or due_soon")
			case len(p.GroupBy) > 0:
				add(key+".group_by", "a list is one list: filter it instead of grouping")
			}
			continue
		default:
			add(key+".view", "%q: want map or list, or leave view out", p.View)
			continue
		}
		if s.Map == nil {
			add(key+".view", "view: map needs the screen's map (map: {file: maps/city.geojson, key: district})")
		}
		if len(p.GroupBy) == 0 {
			add(key+".group_by", "view: map draws groups: group by the map's key (districts) or by station")
			continue
		}
		points := p.Position != nil || p.Stations != ""
		if p.Position != nil && p.Stations != "" {
			add(key+".stations", "give either position (fields) or stations (a file), not both")
		}
		if p.Position != nil && (p.Position.Lon == "" || p.Position.Lat == "") {
			add(key+".position", "needs both lon and lat: the fields that hold them")
		}
		if !points && s.Map != nil && !slices.Contains(p.GroupBy, s.Map.Key) {
			add(key+".group_by", "a district map is filled by the map's key %q: group by it, or give the stations' positions", s.Map.Key)
		}
		if p.Overlay != "" {
			o, ok := s.panel(p.Overlay)
			switch {
			case !ok:
				add(key+".overlay", "no panel %q on this screen", p.Overlay)
			case o.View != ViewMap || (o.Position == nil && o.Stations == ""):
				add(key+".overlay", "panel %q is not a map of stations (view: map with position or stations)", p.Overlay)
			case o.ID == p.ID:
				add(key+".overlay", "a panel cannot overlay itself")
			}
		}
	}
}

// panel finds a panel of the screen by its ID.
func (s ScreenSpec) panel(id string) (Spec, bool) {
	for _, p := range s.Panels {
		if p.ID == id {
			return p, true
		}
	}
	return Spec{}, false
}

// overlaid reports whether a map panel draws the panel over its map.
func (s ScreenSpec) overlaid(id string) bool {
	for _, p := range s.Panels {
		if p.View == ViewMap && p.Overlay == id {
			return true
		}
	}
	return false
}

// validateLayout checks that every panel has a place in the grid, inside
// it, and that no two overlap.
func (s ScreenSpec) validateLayout(add func(key, f string, a ...any)) {
	l := s.Layout
	if l == nil {
		for i, p := range s.Panels {
			if p.Place != nil {
				add(fmt.Sprintf("panels.%d.place", i), "needs the screen's layout: {columns: N, rows: M}")
			}
		}
		return
	}
	if l.Columns < 1 || l.Columns > 48 || l.Rows < 1 || l.Rows > 48 {
		add("layout", "columns and rows: 1 to 48 each")
		return
	}
	owner := make([]int, l.Columns*l.Rows)
	for i, p := range s.Panels {
		key := fmt.Sprintf("panels.%d.place", i)
		if p.Place == nil {
			if !s.overlaid(p.ID) {
				add(key, "every panel of a screen with a layout needs its place: {col, row, width, height} (or to be drawn over a map: overlay)")
			}
			continue
		}
		pl := p.Place.sized()
		if pl.Col < 1 || pl.Row < 1 || pl.Col+pl.Width-1 > l.Columns || pl.Row+pl.Height-1 > l.Rows {
			add(key, "columns %d-%d, rows %d-%d: outside the %dx%d grid", pl.Col, pl.Col+pl.Width-1, pl.Row, pl.Row+pl.Height-1, l.Columns, l.Rows)
			continue
		}
		for r := pl.Row; r < pl.Row+pl.Height; r++ {
			for c := pl.Col; c < pl.Col+pl.Width; c++ {
				if o := owner[(r-1)*l.Columns+c-1]; o > 0 {
					add(key, "overlaps panel %s at column %d, row %d", s.Panels[o-1].ID, c, r)
					r, c = pl.Row+pl.Height, pl.Col+pl.Width // once per panel
					continue
				}
				owner[(r-1)*l.Columns+c-1] = i + 1
			}
		}
	}
}

// Holes lists the cells of a screen's layout that no panel covers, as
// "column 3, row 2": a wall with holes is not an error, but looks broken.
func (s ScreenSpec) Holes() []string {
	l := s.Layout
	if l == nil || l.Columns < 1 || l.Rows < 1 || l.Columns > 48 || l.Rows > 48 {
		return nil
	}
	covered := make([]bool, l.Columns*l.Rows)
	for _, p := range s.Panels {
		if p.Place == nil {
			continue
		}
		pl := p.Place.sized()
		for r := max(pl.Row, 1); r < pl.Row+pl.Height && r <= l.Rows; r++ {
			for c := max(pl.Col, 1); c < pl.Col+pl.Width && c <= l.Columns; c++ {
				covered[(r-1)*l.Columns+c-1] = true
			}
		}
	}
	var holes []string
	for i, ok := range covered {
		if !ok {
			holes = append(holes, fmt.Sprintf("column %d, row %d", i%l.Columns+1, i/l.Columns+1))
		}
	}
	return holes
}

func (p Place) sized() Place {
	p.Width, p.Height = max(p.Width, 1), max(p.Height, 1)
	return p
}

// ScreenMeta is what the pages need to draw a screen beyond its panels'
// values: titles and labels in each language, the map and the layout. It
// travels in snapshots.
type ScreenMeta struct {
	Title  string            `json:"title"`
	Titles map[string]string `json:"titles,omitempty"`
	// Labels of tag values, by tag then value: a text, or one per language.
	Labels feed.Labels `json:"labels,omitempty"`
	Map    *MapMeta    `json:"map,omitempty"`
	Layout *Layout     `json:"layout,omitempty"`
	// Statuses are the statuses by the attention they need, the most
	// first (Ranked): the order the pages sort panels and groups by.
	Statuses []Status `json:"statuses"`
}

// MapMeta tells the pages where the map is and how groups find their
// feature.
type MapMeta struct {
	// URL of the GeoJSON, served by cityscreen.
	URL string `json:"url"`
	// Key is the tag whose values name features; Name the feature
	// property holding names.
	Key  string `json:"key"`
	Name string `json:"name"`
	// Features are the names of the map's features.
	Features []string `json:"features"`
	// Match gives, for each value of Key that names a feature through a
	// label, the feature's name.
	Match map[string]string `json:"match,omitempty"`
	// Extent is the map's bounding box: [west, south, east, north].
	Extent      [4]float64 `json:"extent"`
	Attribution string     `json:"attribution,omitempty"`
	Center      []float64  `json:"center,omitempty"`
	Zoom        float64    `json:"zoom,omitempty"`
}

// Meta builds a screen's meta: its labels are the city's (labels.yaml),
// then the feeds' (of the feeds its panels show), then its own, each
// winning over those before.
func Meta(s ScreenSpec, feeds map[string]feed.Spec, city feed.Labels) ScreenMeta {
	m := ScreenMeta{Title: s.Title.String(), Titles: s.Title.Langs(), Layout: s.Layout, Statuses: Ranked}
	labels := city
	seen := map[string]bool{}
	for _, p := range s.Panels {
		if f, ok := feeds[p.Feed]; ok && !seen[p.Feed] {
			seen[p.Feed] = true
			labels = labels.Merge(f.Labels)
		}
	}
	m.Labels = labels.Merge(s.Labels)
	if s.Map != nil && s.Map.Geo != nil {
		g := s.Map.Geo
		mm := &MapMeta{URL: "/api/screens/" + s.ID + "/map", Key: s.Map.Key, Name: s.Map.Name, Features: g.Names,
			Extent: [4]float64{g.Extent.Min.Lon(), g.Extent.Min.Lat(), g.Extent.Max.Lon(), g.Extent.Max.Lat()}, Attribution: s.Map.Attribution,
			Center: s.Map.Center, Zoom: s.Map.Zoom}
		for v := range m.Labels[s.Map.Key] {
			if f, ok := FeatureOf(s.Map, m.Labels, v); ok && f != v {
				if mm.Match == nil {
					mm.Match = map[string]string{}
				}
				mm.Match[v] = f
			}
		}
		m.Map = mm
	}
	return m
}

// FeatureOf is the map feature a value of the map's key names: the
// feature of that name, else the one a label of the value names.
func FeatureOf(ms *MapSpec, labels feed.Labels, value string) (string, bool) {
	if ms == nil || ms.Geo == nil {
		return "", false
	}
	if ms.Geo.Has(value) {
		return value, true
	}
	t := labels[ms.Key][value]
	names := []string{t.Plain}
	for _, l := range feed.Languages {
		names = append(names, t.ByLang[l])
	}
	for _, n := range names {
		if n != "" && ms.Geo.Has(n) {
			return n, true
		}
	}
	return "", false
}

// UnmatchedLabels lists the labelled values of a screen's map key that
// name no feature of its map, for cityscreen check to warn of.
func UnmatchedLabels(s ScreenSpec, feeds map[string]feed.Spec, city feed.Labels) []string {
	if s.Map == nil || s.Map.Geo == nil {
		return nil
	}
	m := Meta(s, feeds, city)
	var out []string
	for v, t := range m.Labels[s.Map.Key] {
		if _, ok := FeatureOf(s.Map, m.Labels, v); !ok {
			out = append(out, fmt.Sprintf("%s (%s)", v, t.String()))
		}
	}
	sort.Strings(out)
	return out
}

// OffMap lists the stations of a screen's stations files whose position
// falls on no feature of its map.
func OffMap(s ScreenSpec) []string {
	if s.Map == nil || s.Map.Geo == nil {
		return nil
	}
	var out []string
	for _, p := range s.Panels {
		for id, st := range p.StationPos {
			if _, ok := s.Map.Geo.Locate(st.Lon, st.Lat); !ok {
				out = append(out, fmt.Sprintf("panel %s: station %s at lon %g, lat %g", p.ID, id, st.Lon, st.Lat))
			}
		}
	}
	sort.Strings(out)
	return out
}

// titleProblems checks the screen's and panels' texts.
func (s ScreenSpec) titleProblems(add func(key, f string, a ...any)) {
	for _, m := range s.Title.Problems() {
		add("title", "%s", m)
	}
	for _, p := range s.Labels.Problems() {
		add("labels."+p.Key, "%s", p.Msg)
	}
	for i, p := range s.Panels {
		for _, m := range p.Title.Problems() {
			add(fmt.Sprintf("panels.%d.title", i), "%s", m)
		}
		for _, m := range p.Unit.Problems() {
			add(fmt.Sprintf("panels.%d.unit", i), "%s", m)
		}
	}
}
