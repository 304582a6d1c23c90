package feed

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Formats a feed's payload may have.
const (
	FormatJSON   = "json"
	FormatLine   = "line"
	FormatNumber = "number" // the payload is one number, as text
	FormatSenML  = "senml"  // RFC 8428 SenML in JSON
	FormatNGSI   = "ngsi"   // FIWARE NGSI v2 or NGSI-LD entities
)

// Field types a feed may declare.
const (
	TypeFloat  = "float"
	TypeInt    = "int"
	TypeString = "string"
	TypeBool   = "bool"
)

// Time layouts a feed may declare.
const (
	LayoutRFC3339 = "rfc3339"
	LayoutUnixS   = "unix_s"
	LayoutUnixMS  = "unix_ms"
	LayoutUnixUS  = "unix_us"
	LayoutUnixNS  = "unix_ns"
)

// Spec is a feed definition as written in feeds/*.yaml (and, with the same
// keys, as JSON).
type Spec struct {
	// ID names the feed in screens and the API: [a-z0-9-], unique.
	ID string `yaml:"id" json:"id"`
	// Title is shown to people, one text or one per language; empty means
	// the ID.
	Title Text `yaml:"title" json:"title,omitzero"`
	// Topic is an MQTT filter in which each {name} level matches one level
	// and becomes the tag name. + and a final # are allowed too.
	Topic string `yaml:"topic" json:"topic"`
	// Format of the payload: json, line, number, senml or ngsi; empty
	// means json.
	Format string `yaml:"format" json:"format,omitempty"`
	// Records, for json, is the path of an array whose elements are each
	// a reading. Empty means the payload is one reading, or, if it is an
	// array, each element is one.
	Records string `yaml:"records" json:"records,omitempty"`
	// Measurement to store points under. Required for json; for line, empty
	// keeps each line's own measurement.
	Measurement string `yaml:"measurement" json:"measurement,omitempty"`
	// Time says where the reading's timestamp is; nil means the time the
	// message was received.
	Time *TimeSpec `yaml:"time" json:"time,omitempty"`
	// Fields to store, by field name. Required for json. For line, empty
	// keeps every field of each line as it came; otherwise only these.
	Fields map[string]FieldSpec `yaml:"fields" json:"fields,omitempty"`
	// Tags to take from the payload, by tag name, beside the topic's.
	Tags map[string]TagSpec `yaml:"tags" json:"tags,omitempty"`
	// Labels name the values of the feed's tags on screens, in people's
	// words and languages: {district: {daoli: {zh: 道里区, en: Daoli}}}.
	// A value without a label is shown as it is.
	Labels Labels `yaml:"labels" json:"labels,omitempty"`
	// Interval is how often the feed is expected to send at least one
	// message; a feed quiet for longer is marked silent. 0 means no
	// expectation: never silent.
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	// Private names personal data in the payload (phone numbers, ID-card
	// numbers, names): each path is masked or dropped before the message
	// is decoded, kept, shown or stored. Formats json and ngsi.
	Private []PrivateSpec `yaml:"private" json:"private,omitempty"`
	// Cases, when set, says that the feed's readings are events of cases
	// (citizens' requests): which fields hold the case ID, its status and
	// its due time, and how statuses and time limits work. See
	// docs/cases.md.
	Cases *CaseSpec `yaml:"cases" json:"cases,omitempty"`
}

// CaseSpec makes a feed a case feed. Its fields name the feed's own
// fields, so a case event is decoded, checked and stored like any reading.
type CaseSpec struct {
	// ID is the string field that holds the case ID. Required.
	ID string `yaml:"id" json:"id"`
	// Status is the string field that holds the case's status. Required.
	Status string `yaml:"status" json:"status"`
	// Due is the string field (RFC 3339) that holds the case's deadline,
	// if the events carry one; empty means the limits give it.
	Due string `yaml:"due" json:"due,omitempty"`
	// Opened is the string field (RFC 3339) that holds when the case was
	// opened, for sources whose every event says so (Open311's
	// requested_datetime); empty means none. With it, a case first seen in
	// any status, closed included, is opened at that time.
	Opened string `yaml:"opened" json:"opened,omitempty"`
	// Statuses an event may carry; empty means any.
	Statuses []string `yaml:"statuses" json:"statuses,omitempty"`
	// Opening are the statuses that open a case not yet known; empty
	// means any that does not close.
	Opening []string `yaml:"opening" json:"opening,omitempty"`
	// Closed are the statuses that close a case. Required.
	Closed []string `yaml:"closed" json:"closed"`
	// Limits give a case's time limit from its tags, the first that
	// matches, for cases whose events carry no due time.
	Limits []CaseLimit `yaml:"limits" json:"limits,omitempty"`
	// KeepClosed is how long a closed case is remembered (to be reopened);
	// 0 means 30 days. Panels over the feed are filled from this span of
	// events at start.
	KeepClosed Duration `yaml:"keep_closed" json:"keep_closed,omitempty"`
}

// CaseLimit is a time limit for the cases whose tags match When.
type CaseLimit struct {
	// When names tag values ({category: heating, urgency: urgent}); empty
	// matches every case.
	When map[string]string `yaml:"when" json:"when,omitempty"`
	// Within is the time limit from the case's opening.
	Within Duration `yaml:"within" json:"within"`
}

// Limit returns the time limit of a case with these tags, or 0.
func (c *CaseSpec) Limit(tags func(key string) (string, bool)) time.Duration {
	for _, l := range c.Limits {
		ok := true
		for k, v := range l.When {
			if got, has := tags(k); !has || got != v {
				ok = false
				break
			}
		}
		if ok {
			return time.Duration(l.Within)
		}
	}
	return 0
}

// PrivateSpec is one piece of personal data in a payload.
type PrivateSpec struct {
	// Path in the payload (in each record, for records).
	Path string `yaml:"path" json:"path"`
	// Action: mask (keep the shape, hide the middle: 138****5678) or drop
	// (remove it). Empty means mask.
	Action string `yaml:"action" json:"action,omitempty"`
}

// Private actions.
const (
	PrivateMask = "mask"
	PrivateDrop = "drop"
)

// Duration is a time.Duration written as "90s" or "5m" in YAML and JSON.
type Duration time.Duration

// UnmarshalText reads "90s", "5m", "1h".
func (d *Duration) UnmarshalText(b []byte) error {
	x, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like 30s or 5m")
	}
	*d = Duration(x)
	return nil
}

// MarshalText writes the duration as Go does ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// TimeSpec locates a reading's timestamp in the payload.
type TimeSpec struct {
	// Path to the timestamp (gjson syntax); unused for line protocol.
	Path string `yaml:"path" json:"path,omitempty"`
	// Layout: rfc3339, unix_s, unix_ms, unix_us or unix_ns. Empty means
	// rfc3339 for json and unix_ns for line protocol.
	Layout string `yaml:"layout" json:"layout,omitempty"`
}

// FieldSpec declares one stored field.
type FieldSpec struct {
	// Path in the payload (gjson syntax for json, the field key for line
	// protocol); empty means the field's own name.
	Path string `yaml:"path" json:"path,omitempty"`
	// Type: float, int, string or bool. Required.
	Type string `yaml:"type" json:"type"`
	// Unit is shown beside values on screens: one text (µg/m³) or one per
	// language ({zh: 分钟, en: min}).
	Unit Text `yaml:"unit" json:"unit,omitzero"`
	// Min and Max bound numeric values; nil means unbounded.
	Min *float64 `yaml:"min" json:"min,omitempty"`
	Max *float64 `yaml:"max" json:"max,omitempty"`
	// Optional fields may be missing (or null); a missing required field
	// rejects the message. False means required.
	Optional bool `yaml:"optional" json:"optional,omitempty"`
}

// TagSpec declares a tag taken from the payload. A missing tag is left out.
type TagSpec struct {
	// Path in the payload (gjson syntax for json, the tag key for line
	// protocol); empty means the tag's own name.
	Path string `yaml:"path" json:"path,omitempty"`
}

// Problem is one thing wrong with a definition, with the key it concerns
// in dotted form ("fields.pm25.max").
type Problem struct {
	Key string `json:"key"`
	Msg string `json:"message"`
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}

var (
	idRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// ValidID reports whether s may be a feed, screen or panel ID.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidName reports whether s may name a field or tag.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// WithDefaults returns s with every empty setting that has a default filled in.
func (s Spec) WithDefaults() Spec {
	if s.Title.IsZero() {
		s.Title = PlainText(s.ID)
	}
	if s.Format == "" {
		s.Format = FormatJSON
	}
	if s.Time != nil {
		t := *s.Time
		if t.Layout == "" {
			if s.Format == FormatLine {
				t.Layout = LayoutUnixNS
			} else {
				t.Layout = LayoutRFC3339
			}
		}
		s.Time = &t
	}
	if len(s.Fields) > 0 {
		fields := make(map[string]FieldSpec, len(s.Fields))
		for name, f := range s.Fields {
			if f.Path == "" {
				f.Path = name
			}
			fields[name] = f
		}
		s.Fields = fields
	}
	if len(s.Tags) > 0 {
		tags := make(map[string]TagSpec, len(s.Tags))
		for name, t := range s.Tags {
			if t.Path == "" {
				t.Path = name
			}
			tags[name] = t
		}
		s.Tags = tags
	}
	return s
}

// Validate reports every problem of a spec that has had its defaults filled
// in, in key order.
func (s Spec) Validate() []Problem {
	var ps []Problem
	add := func(key, f string, a ...any) { ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(f, a...)}) }
	if s.ID == "" {
		add("id", "is required")
	} else if !ValidID(s.ID) {
		add("id", "%q must be 1-63 characters of a-z, 0-9 and -, starting with a letter or digit", s.ID)
	}
	topicTags, err := parseTopic(s.Topic)
	if err != nil {
		add("topic", "%v", err)
	}
	for _, m := range s.Title.Problems() {
		add("title", "%s", m)
	}
	for _, p := range s.Labels.Problems() {
		add("labels."+p.Key, "%s", p.Msg)
	}
	switch s.Format {
	case FormatJSON:
		if s.Measurement == "" {
			add("measurement", "is required for format json")
		}
		if len(s.Fields) == 0 {
			add("fields", "at least one field is required for format json")
		}
	case FormatLine:
	case FormatNGSI:
		if s.Measurement == "" {
			add("measurement", "is required for format ngsi")
		}
		if len(s.Fields) == 0 {
			add("fields", "at least one field is required for format ngsi: path is the attribute name")
		}
		if s.Time != nil && s.Time.Layout != LayoutRFC3339 {
			add("time.layout", "NGSI dates are ISO 8601: want rfc3339")
		}
	case FormatSenML:
		if s.Measurement == "" {
			add("measurement", "is required for format senml")
		}
		if len(s.Fields) == 0 {
			add("fields", "at least one field is required for format senml: path is the record name (n)")
		}
		if s.Time != nil {
			add("time", "SenML records carry their own time (bt + t)")
		}
		if len(s.Tags) > 0 {
			add("tags", "SenML has no tags: they come from the topic, and the base name is the tag base_name")
		}
	case FormatNumber:
		if s.Measurement == "" {
			add("measurement", "is required for format number")
		}
		if len(s.Fields) != 1 {
			add("fields", "format number takes exactly one field: the value")
		}
		for name, f := range s.Fields {
			if f.Type != TypeFloat && f.Type != TypeInt && f.Type != "" {
				add("fields."+name+".type", "format number gives a float or int, not %s", f.Type)
			}
		}
		if s.Time != nil {
			add("time", "a bare number carries no time: readings are stamped on receipt")
		}
		if len(s.Tags) > 0 {
			add("tags", "a bare number carries no tags: take them from the topic")
		}
	default:
		add("format", "%q is not a format: want json, line, number, senml or ngsi", s.Format)
	}
	if s.Interval < 0 {
		add("interval", "must not be negative")
	}
	if s.Records != "" && s.Format != FormatJSON {
		add("records", "applies to format json only")
	}
	if len(s.Private) > 0 && s.Format != FormatJSON && s.Format != FormatNGSI {
		add("private", "applies to formats json and ngsi; keep personal data out of other payloads")
	}
	for i, p := range s.Private {
		ps = append(ps, checkPrivatePath(fmt.Sprintf("private.%d", i), p)...)
	}
	if s.Cases != nil {
		ps = append(ps, s.checkCases(topicTags)...)
	}
	ps = append(ps, NewPrivacy(nil, []Spec{s}).Check(s)...)
	if s.Time != nil {
		switch s.Time.Layout {
		case LayoutRFC3339, LayoutUnixS, LayoutUnixMS, LayoutUnixUS, LayoutUnixNS:
		default:
			add("time.layout", "%q is not a layout: want rfc3339, unix_s, unix_ms, unix_us or unix_ns", s.Time.Layout)
		}
		if (s.Format == FormatJSON || s.Format == FormatNGSI) && s.Time.Path == "" {
			add("time.path", "is required")
		}
		if s.Format == FormatLine && s.Time.Layout == LayoutRFC3339 {
			add("time.layout", "line protocol timestamps are integers: want unix_s, unix_ms, unix_us or unix_ns")
		}
	}
	for _, name := range sortedKeys(s.Fields) {
		f := s.Fields[name]
		key := "fields." + name
		if !ValidName(name) {
			add(key, "field name %q must be letters, digits and _, not starting with a digit", name)
		}
		for _, m := range f.Unit.Problems() {
			add(key+".unit", "%s", m)
		}
		switch f.Type {
		case TypeFloat, TypeInt:
			if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
				add(key+".min", "min %v is above max %v", *f.Min, *f.Max)
			}
			for k, v := range map[string]*float64{"min": f.Min, "max": f.Max} {
				if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
					add(key+"."+k, "must be a finite number")
				}
			}
		case TypeString, TypeBool:
			if f.Min != nil || f.Max != nil {
				add(key, "min and max apply only to float and int fields")
			}
		case "":
			add(key+".type", "is required: float, int, string or bool")
		default:
			add(key+".type", "%q is not a type: want float, int, string or bool", f.Type)
		}
	}
	for _, name := range sortedKeys(s.Tags) {
		key := "tags." + name
		if !ValidName(name) {
			add(key, "tag name %q must be letters, digits and _, not starting with a digit", name)
		}
		if _, clash := topicTags[name]; clash {
			add(key, "tag %q is also a {%s} level of the topic", name, name)
		}
		if _, clash := s.Fields[name]; clash {
			add(key, "%q is both a tag and a field", name)
		}
	}
	return ps
}

// Filter returns the MQTT subscription filter of the spec's topic: each
// {name} level becomes +.
func (s Spec) Filter() string {
	levels := strings.Split(s.Topic, "/")
	for i, l := range levels {
		if isTagLevel(l) {
			levels[i] = "+"
		}
	}
	return strings.Join(levels, "/")
}

func isTagLevel(l string) bool {
	return len(l) > 2 && l[0] == '{' && l[len(l)-1] == '}'
}

// parseTopic checks a topic pattern and returns its tag names by level.
func parseTopic(topic string) (map[string]int, error) {
	if topic == "" {
		return nil, fmt.Errorf("is required")
	}
	if len(topic) > 1024 {
		return nil, fmt.Errorf("is longer than 1024 bytes")
	}
	if strings.HasPrefix(topic, "$") {
		return nil, fmt.Errorf("%q: topics starting with $ are reserved by the broker", topic)
	}
	if strings.ContainsRune(topic, 0) || !utf8.ValidString(topic) {
		return nil, fmt.Errorf("%q: a topic is UTF-8 text without NUL (MQTT 3.1.1, 4.7.3)", topic)
	}
	tags := map[string]int{}
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return nil, fmt.Errorf("%q: # may only be the last level", topic)
			}
		case l == "+":
		case isTagLevel(l):
			name := l[1 : len(l)-1]
			if !ValidName(name) {
				return nil, fmt.Errorf("%q: {%s} must name a tag with letters, digits and _", topic, name)
			}
			if _, dup := tags[name]; dup {
				return nil, fmt.Errorf("%q: {%s} appears twice", topic, name)
			}
			tags[name] = i
		case strings.ContainsAny(l, "+#{}"):
			return nil, fmt.Errorf("%q: level %q mixes text with +, #, { or }", topic, l)
		}
	}
	return tags, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TopicHasTag reports whether the topic has a {tag} level.
func (s Spec) TopicHasTag(tag string) bool {
	tags, _ := parseTopic(s.Topic)
	_, ok := tags[tag]
	return ok
}

// checkCases reports what is wrong with a case feed's cases section.
func (s Spec) checkCases(topicTags map[string]int) []Problem {
	var ps []Problem
	add := func(key, f string, a ...any) {
		ps = append(ps, Problem{Key: "cases." + key, Msg: fmt.Sprintf(f, a...)})
	}
	c := s.Cases
	if s.Format != FormatJSON && s.Format != FormatNGSI {
		add("", "case feeds take formats json and ngsi")
	}
	for _, kn := range [][2]string{{"id", c.ID}, {"status", c.Status}, {"due", c.Due}, {"opened", c.Opened}} {
		key, name := kn[0], kn[1]
		switch f, ok := s.Fields[name]; {
		case name == "" && (key == "due" || key == "opened"):
		case name == "":
			add(key, "is required: the string field that holds the case's %s", key)
		case !ok:
			add(key, "names no field of the feed: %q", name)
		case f.Type != TypeString && !(key == "id" && f.Type == TypeInt):
			add(key, "field %q must be a string (or, for the ID, an int)", name)
		case (key == "id" || key == "status") && f.Optional:
			add(key, "field %q must not be optional: every event names its case and status", name)
		}
	}
	if len(c.Closed) == 0 {
		add("closed", "name at least one status that closes a case")
	}
	declared := map[string]bool{}
	for _, st := range c.Statuses {
		declared[st] = true
	}
	for _, kl := range []struct {
		key  string
		list []string
	}{{"closed", c.Closed}, {"opening", c.Opening}} {
		key := kl.key
		for _, st := range kl.list {
			if len(declared) > 0 && !declared[st] {
				add(key, "%q is not among the statuses", st)
			}
		}
	}
	for _, st := range c.Opening {
		if slices.Contains(c.Closed, st) {
			add("opening", "%q closes a case: it cannot open one", st)
		}
	}
	for i, l := range c.Limits {
		if l.Within <= 0 {
			add(fmt.Sprintf("limits.%d.within", i), "is required: a positive duration such as 24h")
		}
		for k := range l.When {
			if _, fromTopic := topicTags[k]; !fromTopic {
				if _, tagged := s.Tags[k]; !tagged {
					add(fmt.Sprintf("limits.%d.when.%s", i, k), "the feed has no tag %q (from its topic or tags)", k)
				}
			}
		}
	}
	if c.KeepClosed < 0 {
		add("keep_closed", "must not be negative")
	}
	return ps
}
