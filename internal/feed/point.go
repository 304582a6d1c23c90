package feed

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Point is one reading ready to store: tags and fields sorted by key.
type Point struct {
	Measurement string
	Tags        []Tag
	Fields      []Field
	Time        time.Time
}

// Tag is a key and value of a point.
type Tag struct{ Key, Value string }

// Field is a typed value of a point.
type Field struct {
	Key   string
	Value lineprotocol.Value
}

// Tag returns the value of tag key, and whether the point has it.
func (p *Point) Tag(key string) (string, bool) {
	for _, t := range p.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// StringField returns a string field's value, or "" when the point has
// no such string field.
func (p *Point) StringField(key string) string {
	if v, ok := p.Field(key); ok && v.Kind() == lineprotocol.String {
		return v.StringV()
	}
	return ""
}

// Text returns a string or integer field's value as text, or "".
func (p *Point) Text(key string) string {
	v, ok := p.Field(key)
	switch {
	case !ok:
		return ""
	case v.Kind() == lineprotocol.String:
		return v.StringV()
	case v.Kind() == lineprotocol.Int:
		return strconv.FormatInt(v.IntV(), 10)
	}
	return ""
}

// Field returns the value of field key, and whether the point has it.
func (p *Point) Field(key string) (lineprotocol.Value, bool) {
	for _, f := range p.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return lineprotocol.Value{}, false
}

// Number returns a field's value as a float64: bools count as 0 and 1;
// strings are not numbers.
func Number(v lineprotocol.Value) (float64, bool) {
	switch v.Kind() {
	case lineprotocol.Float:
		return v.FloatV(), true
	case lineprotocol.Int:
		return float64(v.IntV()), true
	case lineprotocol.Uint:
		return float64(v.UintV()), true
	case lineprotocol.Bool:
		if v.BoolV() {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// AppendLine encodes p as one line of InfluxDB line protocol with a
// nanosecond timestamp.
func (p *Point) AppendLine(enc *lineprotocol.Encoder) {
	enc.StartLine(p.Measurement)
	for _, t := range p.Tags {
		enc.AddTag(t.Key, t.Value)
	}
	for _, f := range p.Fields {
		enc.AddField(f.Key, f.Value)
	}
	enc.EndLine(p.Time)
}

// sort puts p's tags and fields in key order. A reading of a feed whose
// keys are declared has few of each, most often in order already (the
// fields always, the payload's tags after the topic's), so a few are
// sorted by insertion: one comparison each when they are in order.
func (p *Point) sort() {
	if t := p.Tags; len(t) <= smallSort {
		for i := 1; i < len(t); i++ {
			for j := i; j > 0 && t[j].Key < t[j-1].Key; j-- {
				t[j], t[j-1] = t[j-1], t[j]
			}
		}
	} else {
		slices.SortFunc(t, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	}
	if f := p.Fields; len(f) <= smallSort {
		for i := 1; i < len(f); i++ {
			for j := i; j > 0 && f[j].Key < f[j-1].Key; j-- {
				f[j], f[j-1] = f[j-1], f[j]
			}
		}
	} else {
		slices.SortFunc(f, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	}
}

// smallSort is the most keys sorted by insertion; past it the standard
// library's sort is quicker.
const smallSort = 12

// check finds what a sorted point may not have twice.
func (p *Point) check() error {
	for i := 1; i < len(p.Tags); i++ {
		if p.Tags[i].Key == p.Tags[i-1].Key {
			return fmt.Errorf("tag %s is given twice", p.Tags[i].Key)
		}
	}
	for i := 1; i < len(p.Fields); i++ {
		if p.Fields[i].Key == p.Fields[i-1].Key {
			return fmt.Errorf("field %s is given twice", p.Fields[i].Key)
		}
	}
	return nil
}

// checkTagValues finds a tag value line protocol cannot hold, as the
// encoder does when it checks everything: empty, not UTF-8, a control
// character, or a trailing backslash.
func (p *Point) checkTagValues() error {
	for _, t := range p.Tags {
		if !encodableValue(t.Value) {
			return fmt.Errorf("invalid tag value %s=%q", t.Key, t.Value)
		}
	}
	return nil
}

func encodableValue(s string) bool {
	if s == "" || s[len(s)-1] == '\\' {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}
