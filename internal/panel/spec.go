package panel

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/cityscreen/cityscreen/internal/cases"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Aggregates a panel may compute over its window.
const (
	AggCount = "count"
	AggSum   = "sum"
	AggMean  = "mean"
	AggMin   = "min"
	AggMax   = "max"
	AggLast  = "last"
	// AggRate is readings per Per (a minute by default).
	AggRate = "rate"
	// AggDistinct counts the distinct values of Tag (or Field).
	AggDistinct = "distinct"
	// AggRatio is the share, in percent, of the readings (or the sum of
	// Field) that match Where.
	AggRatio = "ratio"
	// Percentiles of Field, from a DDSketch with 1% relative accuracy.
	AggP50 = "p50"
	AggP90 = "p90"
	AggP95 = "p95"
	AggP99 = "p99"
)

// aggs lists every aggregate, for messages.
const aggs = "count, sum, mean, min, max, last, rate, distinct, ratio, p50, p90, p95, p99, or over a case feed's open cases open, overdue, due_soon or oldest_age"

// quantiles of the percentile aggregates.
var quantiles = map[string]float64{AggP50: 0.50, AggP90: 0.90, AggP95: 0.95, AggP99: 0.99}

// Calendar windows: this hour, today, this week (from Monday), in the
// screen's time zone.
const (
	CalendarHour = "hour"
	CalendarDay  = "day"
	CalendarWeek = "week"
)

var calendarPeriods = map[string]time.Duration{CalendarHour: time.Hour, CalendarDay: 24 * time.Hour, CalendarWeek: 7 * 24 * time.Hour}

// DefaultTimeZone is the city's: calendar windows reset at its midnight.
const DefaultTimeZone = "Asia/Shanghai"

// ScreenSpec is a screen definition as written in screens/*.yaml.
type ScreenSpec struct {
	// ID names the screen in URLs: [a-z0-9-], unique.
	ID string `yaml:"id" json:"id"`
	// Title is shown at the top of the screen, one text or one per
	// language; empty means the ID.
	Title feed.Text `yaml:"title" json:"title"`
	// Panels in the order the screen shows them.
	Panels []Spec `yaml:"panels" json:"panels"`
	// Labels name tag values on this screen, beside (and before) those its
	// feeds give.
	Labels feed.Labels `yaml:"labels" json:"labels,omitempty"`
	// Map is the city's boundary file that the screen's map panels draw;
	// nil means the screen has no map.
	Map *MapSpec `yaml:"map" json:"map,omitempty"`
	// Layout places the panels on the wall in a grid; nil means tiles in
	// the screen's order, as many as fit.
	Layout *Layout `yaml:"layout" json:"layout,omitempty"`
	// TimeZone of the calendar windows (an IANA name); empty means
	// Asia/Shanghai.
	TimeZone string `yaml:"time_zone" json:"time_zone,omitempty"`
	// File the screen was read from, for messages; empty for none.
	File string `yaml:"-" json:"-"`
}

// Spec is one panel of a screen.
type Spec struct {
	// ID is unique within the screen: [a-z0-9-].
	ID string `yaml:"id" json:"id"`
	// Title is shown on the panel, one text or one per language; empty
	// means the ID.
	Title feed.Text `yaml:"title" json:"title"`
	// View is how the panel is drawn: empty for a number (with its trend)
	// or bars by group, map for a grouped panel drawn on the screen's map.
	View string `yaml:"view" json:"view,omitempty"`
	// Place is where the panel sits in the screen's Layout; nil when the
	// screen has none.
	Place *Place `yaml:"place" json:"place,omitempty"`
	// Position gives a map panel's groups (stations) their place from
	// fields of their readings; nil means from Stations, or none.
	Position *Position `yaml:"position" json:"position,omitempty"`
	// Stations is a file (beside the main file, like the map) giving each
	// station its position: {ID: {lon, lat, name}}. Empty means none.
	Stations string `yaml:"stations" json:"stations,omitempty"`
	// Overlay names a map panel of the same screen whose stations are
	// drawn as points over this panel's map (districts filled by this
	// panel, stations by that one). Empty means none.
	Overlay string `yaml:"overlay" json:"overlay,omitempty"`
	// StationPos is Stations as loaded (by config), by station: the value
	// of the panel's last group_by tag.
	StationPos map[string]Station `yaml:"-" json:"-"`
	// Feed is the ID of the feed whose readings the panel aggregates.
	Feed string `yaml:"feed" json:"feed"`
	// Field of the feed to aggregate. Empty is allowed for count only and
	// counts the feed's readings.
	Field string `yaml:"field" json:"field,omitempty"`
	// Agg: count, sum, mean, min, max, last, rate, distinct, ratio, p50,
	// p90, p95 or p99.
	Agg string `yaml:"agg" json:"agg"`
	// Window is the sliding window aggregated over; 0 means 5m (or, with
	// Calendar, the calendar period).
	Window time.Duration `yaml:"window" json:"window"`
	// Calendar, instead of a sliding window: hour, day or week (from
	// Monday), which start afresh at the top of the hour, local midnight
	// or Monday's midnight in the screen's time zone.
	Calendar string `yaml:"calendar" json:"calendar,omitempty"`
	// Rows is how many cases a list shows at most; 0 means 20.
	Rows int `yaml:"rows" json:"rows,omitempty"`
	// Within is the span of due_soon: open cases due within it (and not
	// yet overdue).
	Within time.Duration `yaml:"within" json:"within,omitempty"`
	// Per is the unit of a rate: 1s, 1m or 1h; 0 means 1m.
	Per time.Duration `yaml:"per" json:"per,omitempty"`
	// Tag whose distinct values the distinct aggregate counts; empty
	// means Field's values.
	Tag string `yaml:"tag" json:"tag,omitempty"`
	// Filter keeps only the readings whose tags (or fields) have these
	// values.
	Filter map[string]string `yaml:"filter" json:"filter,omitempty"`
	// Where selects the readings a ratio counts, out of all the panel's
	// readings: {resolved: "true"}, {channel: online}.
	Where map[string]string `yaml:"where" json:"where,omitempty"`
	// Top keeps the groups of a grouped panel with the N highest values;
	// 0 means all.
	Top int `yaml:"top" json:"top,omitempty"`
	// History makes an ungrouped panel carry its trend: the aggregate over
	// each step of the span. Nil means none.
	History *HistorySpec `yaml:"history" json:"history,omitempty"`
	// GroupBy tags give one value per distinct tag set; empty gives one
	// value for the panel.
	GroupBy []string `yaml:"group_by" json:"group_by,omitempty"`
	// Thresholds colour the value; nil means always ok.
	Thresholds *Thresholds `yaml:"thresholds" json:"thresholds,omitempty"`
	// StaleAfter marks the panel stale when its newest reading is older
	// than this; 0 means the smaller of the window and 2m.
	StaleAfter time.Duration `yaml:"stale_after" json:"stale_after,omitempty"`
	// Unit shown beside the value; empty means the feed field's unit
	// (none for count).
	Unit feed.Text `yaml:"unit" json:"unit,omitzero"`
	// MaxGroups bounds the number of groups a grouped panel tracks; 0
	// means 1000. Readings of further groups are counted and left out.
	MaxGroups int `yaml:"max_groups" json:"max_groups,omitempty"`
}

// Thresholds give a value's status: at or above Warn it is warn, at or
// above Crit it is crit (at or below, with Below). Either may be left
// out. A status is raised only once the value has stayed past its
// threshold for For, and clears only once the value is Hysteresis back on
// the good side: no alert flapping with a value at the line.
type Thresholds struct {
	Warn *float64 `yaml:"warn" json:"warn,omitempty"`
	Crit *float64 `yaml:"crit" json:"crit,omitempty"`
	// Below: low values are the trouble (a share resolved, a supply
	// temperature).
	Below bool `yaml:"below" json:"below,omitempty"`
	// Hysteresis, in the value's unit; 0 means none.
	Hysteresis float64 `yaml:"hysteresis" json:"hysteresis,omitempty"`
	// For is how long a value must stay past a threshold before the status
	// is raised; 0 means at once.
	For time.Duration `yaml:"for" json:"for,omitempty"`
}

// WithDefaults returns s with every empty setting that has a default filled in.
func (s ScreenSpec) WithDefaults() ScreenSpec {
	if s.Title.IsZero() {
		s.Title = feed.PlainText(s.ID)
	}
	if s.Map != nil {
		m := *s.Map
		m.Key = cmp.Or(m.Key, "district")
		m.Name = cmp.Or(m.Name, "name")
		s.Map = &m
	}
	if s.TimeZone == "" {
		s.TimeZone = DefaultTimeZone
	}
	panels := make([]Spec, len(s.Panels))
	for i, p := range s.Panels {
		if p.Title.IsZero() {
			p.Title = feed.PlainText(p.ID)
		}
		if p.Window == 0 {
			switch p.Calendar {
			case CalendarHour:
				p.Window = time.Hour
			case CalendarDay:
				p.Window = 24 * time.Hour
			case CalendarWeek:
				p.Window = 7 * 24 * time.Hour
			default:
				p.Window = 5 * time.Minute
			}
		}
		if p.Agg == AggRate && p.Per == 0 {
			p.Per = time.Minute
		}
		if p.StaleAfter == 0 {
			p.StaleAfter = min(p.Window, 2*time.Minute)
		}
		if _, pct := quantiles[p.Agg]; p.MaxGroups == 0 && pct {
			p.MaxGroups = 100 // a sketch per bucket: fewer groups
		}
		if p.MaxGroups == 0 {
			p.MaxGroups = 1000
		}
		panels[i] = p
	}
	s.Panels = panels
	return s
}

// Validate reports every problem of a screen that has had its defaults
// filled in, checking feeds, fields and tags against the feeds given.
func (s ScreenSpec) Validate(feeds map[string]feed.Spec) []feed.Problem {
	var ps []feed.Problem
	add := func(key, f string, a ...any) { ps = append(ps, feed.Problem{Key: key, Msg: fmt.Sprintf(f, a...)}) }
	if s.ID == "" {
		add("id", "is required")
	} else if !feed.ValidID(s.ID) {
		add("id", "%q must be 1-63 characters of a-z, 0-9 and -", s.ID)
	}
	if len(s.Panels) == 0 {
		add("panels", "a screen needs at least one panel")
	}
	s.titleProblems(add)
	s.validateMap(add)
	s.validateLayout(add)
	if _, err := time.LoadLocation(s.TimeZone); err != nil {
		add("time_zone", "%q is not a time zone: want an IANA name like Asia/Shanghai", s.TimeZone)
	}
	seen := map[string]bool{}
	for i, p := range s.Panels {
		key := fmt.Sprintf("panels.%d", i)
		switch {
		case p.ID == "":
			add(key+".id", "is required")
		case !feed.ValidID(p.ID):
			add(key+".id", "%q must be 1-63 characters of a-z, 0-9 and -", p.ID)
		case seen[p.ID]:
			add(key+".id", "%q is used by another panel of this screen", p.ID)
		}
		seen[p.ID] = true
		switch p.Agg {
		case AggCount, AggSum, AggMean, AggMin, AggMax, AggLast, AggRate, AggDistinct, AggRatio, AggP50, AggP90, AggP95, AggP99,
			AggOpen, AggOverdue, AggDueSoon, AggOldest:
		case "":
			add(key+".agg", "is required: "+aggs)
		default:
			add(key+".agg", "%q is not an aggregate: want "+aggs, p.Agg)
		}
		switch p.Calendar {
		case "", CalendarHour, CalendarDay, CalendarWeek:
		default:
			add(key+".calendar", "%q: want hour, day or week", p.Calendar)
		}
		if period, ok := calendarPeriods[p.Calendar]; ok && p.Window != period {
			add(key+".window", "a calendar panel's window is its period: leave window out")
		}
		if p.Per != 0 && p.Per != time.Second && p.Per != time.Minute && p.Per != time.Hour {
			add(key+".per", "%s: want 1s, 1m or 1h", p.Per)
		}
		if p.Per != 0 && p.Agg != AggRate {
			add(key+".per", "applies to rate only")
		}
		if p.Agg == AggRatio && len(p.Where) == 0 {
			add(key+".where", "a ratio needs where: the readings it counts out of all")
		}
		if p.Agg != AggRatio && len(p.Where) > 0 {
			add(key+".where", "applies to ratio only (filter keeps readings for any aggregate)")
		}
		if p.Top < 0 {
			add(key+".top", "must not be negative")
		} else if p.Top > 0 && len(p.GroupBy) == 0 {
			add(key+".top", "applies to grouped panels only")
		}
		if h := p.History; h != nil {
			switch {
			case h.Step < time.Second:
				add(key+".history.step", "at least 1s")
			case h.Span < h.Step:
				add(key+".history.span", "must be at least one step")
			case h.Span/h.Step > maxHistoryPoints:
				add(key+".history", "%s at %s steps is %d points: at most %d", h.Span, h.Step, h.Span/h.Step, maxHistoryPoints)
			}
			if len(p.GroupBy) > 0 {
				add(key+".history", "applies to ungrouped panels")
			}
			if p.Agg == AggDistinct {
				add(key+".history", "is not kept for distinct")
			}
		}
		if p.Window < time.Second {
			add(key+".window", "%s is too short: at least 1s", p.Window)
		} else if p.Window > 7*24*time.Hour {
			add(key+".window", "%s is too long: at most 168h", p.Window)
		}
		if p.StaleAfter < 0 {
			add(key+".stale_after", "must not be negative")
		}
		if p.MaxGroups < 0 {
			add(key+".max_groups", "must not be negative")
		}
		if t := p.Thresholds; t != nil {
			for k, v := range map[string]*float64{"warn": t.Warn, "crit": t.Crit} {
				if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
					add(key+".thresholds."+k, "must be a finite number")
				}
			}
			switch {
			case t.Warn != nil && t.Crit != nil && !t.Below && *t.Warn > *t.Crit:
				add(key+".thresholds", "warn %v is above crit %v", *t.Warn, *t.Crit)
			case t.Warn != nil && t.Crit != nil && t.Below && *t.Warn < *t.Crit:
				add(key+".thresholds", "with below, warn %v must not be under crit %v", *t.Warn, *t.Crit)
			}
			if t.Hysteresis < 0 || math.IsNaN(t.Hysteresis) || math.IsInf(t.Hysteresis, 0) {
				add(key+".thresholds.hysteresis", "must be a finite number, not negative")
			}
			if t.For < 0 {
				add(key+".thresholds.for", "must not be negative")
			}
		}
		fs, ok := feeds[p.Feed]
		if p.Feed == "" {
			add(key+".feed", "is required")
			continue
		}
		if !ok {
			add(key+".feed", "no feed has the ID %q", p.Feed)
			continue
		}
		if caseAggs[p.Agg] || fs.Cases != nil {
			ps = append(ps, checkCasePanel(key, p, fs)...)
			if caseAggs[p.Agg] {
				continue
			}
		} else if p.Within != 0 {
			add(key+".within", "applies to due_soon only")
		}
		_, percentile := quantiles[p.Agg]
		switch {
		case p.Agg == AggDistinct && p.Tag != "":
			if !feedHasTag(fs, p.Tag) {
				add(key+".tag", "feed %q has no tag %q (from its topic or tags)", p.Feed, p.Tag)
			}
		case p.Tag != "":
			add(key+".tag", "applies to distinct only")
		}
		if p.Field == "" {
			switch p.Agg {
			case AggCount, AggRate, AggRatio, "":
			case AggDistinct:
				if p.Tag == "" {
					add(key+".tag", "distinct needs the tag (or field) whose values it counts")
				}
			default:
				add(key+".field", "is required for %s", p.Agg)
			}
		} else if len(fs.Fields) > 0 {
			f, ok := fs.Fields[p.Field]
			if t, derived := cases.Derived[p.Field]; !ok && derived && fs.Cases != nil {
				f, ok = feed.FieldSpec{Type: t}, true
			}
			switch {
			case !ok:
				add(key+".field", "feed %q has no field %q", p.Feed, p.Field)
			case f.Type == feed.TypeString && p.Agg != AggCount && p.Agg != AggDistinct:
				add(key+".field", "%q is a string field: only count and distinct apply", p.Field)
			case percentile && f.Type == feed.TypeBool:
				add(key+".field", "%q is a boolean: percentiles need numbers", p.Field)
			}
		}
		for j, tag := range p.GroupBy {
			if !feedHasTag(fs, tag) {
				add(fmt.Sprintf("%s.group_by.%d", key, j), "feed %q has no tag %q (from its topic or tags)", p.Feed, tag)
			}
		}
	}
	return ps
}

// feedHasTag reports whether a feed's points can carry the tag. Line
// protocol brings its own tags, so any name may appear there.
func feedHasTag(fs feed.Spec, tag string) bool {
	switch {
	case fs.Format == feed.FormatLine,
		fs.Format == feed.FormatSenML && tag == "base_name",
		fs.Format == feed.FormatNGSI && (tag == "entity_id" || tag == "entity_type"):
		return true
	}
	if _, ok := fs.Tags[tag]; ok {
		return true
	}
	return fs.TopicHasTag(tag)
}

// checkCasePanel reports what is wrong with a panel over a case feed.
func checkCasePanel(key string, p Spec, fs feed.Spec) []feed.Problem {
	var ps []feed.Problem
	add := func(k, f string, a ...any) { ps = append(ps, feed.Problem{Key: key + k, Msg: fmt.Sprintf(f, a...)}) }
	if !caseAggs[p.Agg] {
		if p.Within != 0 {
			add(".within", "applies to due_soon only")
		}
		return ps
	}
	switch {
	case fs.Cases == nil:
		add(".agg", "%s counts open cases: feed %q is not a case feed (it has no cases section)", p.Agg, p.Feed)
	case p.Field != "":
		add(".field", "%s counts open cases: leave field out", p.Agg)
	case p.Agg == AggDueSoon && p.Within <= 0:
		add(".within", "due_soon needs within: the span ahead, such as 2h")
	case p.Agg != AggDueSoon && p.Within != 0:
		add(".within", "applies to due_soon only")
	case p.Calendar != "" || p.History != nil:
		add(".agg", "%s is the cases as they stand now: no calendar or history", p.Agg)
	case p.Rows < 0 || p.Rows > 200:
		add(".rows", "from 1 to 200")
	case p.Rows != 0 && p.View != ViewList:
		add(".rows", "applies to view: list")
	}
	for j, tag := range p.GroupBy {
		if tag != StatusTag && !feedHasTag(fs, tag) {
			add(fmt.Sprintf(".group_by.%d", j), "feed %q has no tag %q (from its topic or tags, or status)", p.Feed, tag)
		}
	}
	return ps
}
