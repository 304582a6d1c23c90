package panel

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// CaseRow is one case of a list panel. Pages show how late it is (or how
// soon it is due) from Due and their clock.
type CaseRow struct {
	ID     string            `json:"id"`
	Tags   map[string]string `json:"tags"`
	Status string            `json:"status"`
	Opened time.Time         `json:"opened"`
	Due    time.Time         `json:"due"`
}

// Status is the state of a panel, a group or an alert, as screens show it.
type Status string

// Panel statuses.
const (
	StatusOK     Status = "ok"
	StatusWarn   Status = "warn"
	StatusCrit   Status = "crit"
	StatusStale  Status = "stale"
	StatusNoData Status = "nodata"
)

// Ranked lists the statuses by the attention they need, the most first.
// It is the one ranking: Rank reads it, and every screen's meta carries it
// to the pages (live.js rank).
var Ranked = []Status{StatusCrit, StatusWarn, StatusStale, StatusOK, StatusNoData}

// Rank is the status's place in Ranked; anything else comes last.
func (s Status) Rank() int {
	if i := slices.Index(Ranked, s); i >= 0 {
		return i
	}
	return len(Ranked)
}

// View is a panel as screens receive it (the PANEL object of the websocket
// protocol). Value is set for an ungrouped panel with data; Groups for a
// grouped one. Updated is the time of the newest reading in the window.
type View struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Titles is the title by language, when the screen gives one per
	// language.
	Titles map[string]string `json:"titles,omitempty"`
	// View is how the panel is drawn (map), empty for the default.
	View string `json:"view,omitempty"`
	// Points tells a map panel of stations (drawn as points), and Overlay
	// names the panel of stations drawn over this one's map.
	Points  bool   `json:"points,omitempty"`
	Overlay string `json:"overlay,omitempty"`
	// Place is the panel's rectangle in the screen's layout.
	Place   *Place      `json:"place,omitempty"`
	Agg     string      `json:"agg"`
	Window  string      `json:"window"`
	Status  Status      `json:"status"`
	Value   *float64    `json:"value"`
	Groups  []GroupView `json:"groups"`
	Updated *time.Time  `json:"updated"`
	Feed    string      `json:"feed"`
	Field   string      `json:"field,omitempty"`
	Unit    string      `json:"unit,omitempty"`
	// Units is the unit by language, when it is given one per language.
	Units      map[string]string `json:"units,omitempty"`
	GroupBy    []string          `json:"group_by,omitempty"`
	Thresholds *Thresholds       `json:"thresholds,omitempty"`
	StaleAfter string            `json:"stale_after"`
	Calendar   string            `json:"calendar,omitempty"`
	// Cases are a list panel's cases (view: list), at most its rows: the
	// overdue, most overdue first, or those due soon, soonest first.
	Cases []CaseRow `json:"cases,omitempty"`
	// Alert is the panel's active alert, when it has one.
	Alert *Mark `json:"alert,omitempty"`
	// Previous is, for a calendar panel, the value of the whole previous
	// period: yesterday for today.
	Previous *float64 `json:"previous,omitempty"`
	// History is the panel's trend, when it keeps one: in snapshots, and
	// in updates when a step begins or a past step changes.
	History []HistPoint `json:"history,omitempty"`
	// HistoryNow is, in an update without History, the trend's point of
	// the step in progress, which replaces (or follows) the last point of
	// the trend the screen has.
	HistoryNow *HistPoint `json:"history_now,omitempty"`
}

// calendarLabels name calendar windows on screens.
var calendarLabels = map[string]string{CalendarHour: "this hour", CalendarDay: "today", CalendarWeek: "this week"}

// GroupView is one group of a grouped panel.
type GroupView struct {
	Tags    map[string]string `json:"tags"`
	Value   float64           `json:"value"`
	Status  Status            `json:"status"`
	Updated *time.Time        `json:"updated"`
	Alert   *Mark             `json:"alert,omitempty"`
	// Pos is a station's position, [longitude, latitude], for a map
	// panel that knows its stations' positions.
	Pos *[2]float64 `json:"pos,omitempty"`
	// OffMap tells that Pos falls on no feature of the screen's map: the
	// pages list such a station beside the map instead of drawing it.
	OffMap bool `json:"off_map,omitempty"`
}

// sortGroups orders groups by their tag values, so frames are stable.
func sortGroups(gs []GroupView) {
	sort.Slice(gs, func(i, j int) bool { return tagString(gs[i].Tags) < tagString(gs[j].Tags) })
}

// topGroups orders groups by value, highest first (ties by tags).
func topGroups(gs []GroupView) {
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].Value != gs[j].Value {
			return gs[i].Value > gs[j].Value
		}
		return tagString(gs[i].Tags) < tagString(gs[j].Tags)
	})
}

func tagString(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(tags[k])
		sb.WriteByte(0)
	}
	return sb.String()
}

// FormatDuration writes a duration the way people write windows: 5m, 1h,
// 1h30m, 90s rather than 5m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
