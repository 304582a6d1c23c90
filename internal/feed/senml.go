package feed

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// senmlRecord is one record of a SenML pack (RFC 8428, JSON). Base fields
// are pointers: one given as zero or "" still replaces the one before.
type senmlRecord struct {
	BaseName  *string  `json:"bn"`
	BaseTime  *float64 `json:"bt"`
	BaseUnit  *string  `json:"bu"`
	BaseValue *float64 `json:"bv"`
	BaseSum   *float64 `json:"bs"`
	Version   int      `json:"bver"`
	Name      string   `json:"n"`
	Unit      string   `json:"u"`
	Value     *float64 `json:"v"`
	String    *string  `json:"vs"`
	Bool      *bool    `json:"vb"`
	Data      *string  `json:"vd"`
	Sum       *float64 `json:"s"`
	Time      float64  `json:"t"`
	Update    float64  `json:"ut"`
}

// senmlBase holds the base fields in force (RFC 8428 section 4.1: from
// the record that gives one to the next record that gives it again).
type senmlBase struct {
	name, unit       string
	time, value, sum float64
}

func (b *senmlBase) apply(r *senmlRecord) {
	if r.BaseName != nil {
		b.name = *r.BaseName
	}
	if r.BaseTime != nil {
		b.time = *r.BaseTime
	}
	if r.BaseUnit != nil {
		b.unit = *r.BaseUnit
	}
	if r.BaseValue != nil {
		b.value = *r.BaseValue
	}
	if r.BaseSum != nil {
		b.sum = *r.BaseSum
	}
}

// senmlRelative: resolved times below 2^28 are relative to now (RFC 8428 4.5.3).
const senmlRelative = 1 << 28

// senmlSum ends a field's path that takes a record's sum (s, plus the
// base sum bs) rather than its value: "#" is not in a SenML name.
const senmlSum = "#sum"

// decodeSenML reads a SenML pack. Records are resolved as RFC 8428 says
// (base name + name, base time + time, base value + value, base sum +
// sum) and checked as it requires: a resolved name of its characters,
// one value per record (or a sum), a version cityscreen reads and no
// field it must understand but does not. A declared field's path is
// matched against each record's name without the base name (n), and
// then against the resolved name (bn + n). Records matched by n with the
// same base name and time make one point, tagged base_name; records
// matched by their resolved name make points without that tag, so a pack
// and its resolved form store the same.
func decodeSenML(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error) {
	var pack []senmlRecord
	if err := json.Unmarshal(payload, &pack); err != nil {
		return nil, fmt.Errorf("payload is not a SenML pack (a JSON array of records): %v", err)
	}
	// Fields whose label ends in "_" must be understood, or the pack
	// refused (RFC 8428 section 4.4); cityscreen understands none.
	var labels []map[string]json.RawMessage
	if err := json.Unmarshal(payload, &labels); err == nil {
		for i, rec := range labels {
			for k := range rec {
				if strings.HasSuffix(k, "_") {
					return nil, fmt.Errorf("record %d: field %q must be understood (RFC 8428 section 4.4), and cityscreen does not know it", i+1, Clip(k))
				}
			}
		}
	}
	// A field's path is a record's name, or NAME@UNIT to take only the
	// records of that unit, or @UNIT for records that have no name of
	// their own (RFC 8428's measurements told apart by unit alone); either
	// followed by #sum for the record's sum.
	fieldByPath := make(map[string]string, len(f.spec.Fields))
	for name, fs := range f.spec.Fields {
		fieldByPath[fs.Path] = name
	}
	type key struct {
		bn string
		t  int64
	}
	points := map[key]*Point{}
	var order []key
	var base senmlBase
	for i := range pack {
		r := &pack[i]
		base.apply(r)
		if r.Version > 10 {
			return nil, fmt.Errorf("record %d: SenML version %d is not supported", i+1, r.Version)
		}
		name := base.name + r.Name
		if err := checkSenMLName(name); err != nil {
			return nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		if err := checkSenMLValues(r); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i+1, Clip(name), err)
		}
		t := base.time + r.Time
		if math.IsNaN(t) || math.IsInf(t, 0) || math.Abs(t) > 1e11 {
			return nil, fmt.Errorf("record %d: time %v is out of range", i+1, t)
		}
		// To the microsecond: a float64 holds no finer for today's times.
		at := time.UnixMicro(int64(math.Round(t * 1e6))).UTC()
		if t < senmlRelative {
			at = received.Add(time.Duration(math.Round(t*1e6)) * time.Microsecond)
		}
		unit := r.Unit
		if unit == "" {
			unit = base.unit
		}
		for _, suffix := range [...]string{"", senmlSum} {
			field, bn, ok := senmlField(fieldByPath, r.Name, base.name, unit, suffix)
			if !ok {
				continue // not a field this feed stores
			}
			var v lineprotocol.Value
			var err error
			if suffix == senmlSum {
				v, err = senmlSumValue(r, base.sum, f.spec.Fields[field])
			} else {
				v, err = senmlValue(r, base.value, f.spec.Fields[field])
			}
			if err != nil {
				return nil, fmt.Errorf("record %d (%s): %w", i+1, Clip(name), err)
			}
			k := key{bn, at.UnixNano()}
			p := points[k]
			if p == nil {
				p = &Point{Measurement: f.spec.Measurement, Time: at}
				f.addTopicTags(p, topic)
				if bn != "" {
					p.Tags = setTag(p.Tags, tagBaseName, bn)
				}
				points[k] = p
				order = append(order, k)
			}
			if hasField(p.Fields, field) {
				return nil, fmt.Errorf("record %d: %s is given twice for one time", i+1, Clip(name))
			}
			p.Fields = append(p.Fields, Field{field, v})
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].t < order[j].t })
	out := make([]Point, 0, len(order))
	for _, k := range order {
		p := points[k]
		for name, fs := range f.spec.Fields {
			if !fs.Optional && !hasField(p.Fields, name) {
				return nil, fmt.Errorf("field %s (name %q) is missing at %s", name, fs.Path, p.Time.Format(time.RFC3339Nano))
			}
		}
		out = append(out, *p)
	}
	return out, nil
}

// senmlField finds the declared field for a record's name n (under the
// base name bn) in unit, its value (suffix "") or its sum (senmlSum): by
// n in that unit, by n, then by the resolved name bn+n in that unit and
// by it alone. It returns the base name that tags the point: bn when
// matched by n, "" when matched by the resolved name.
func senmlField(byPath map[string]string, n, bn, unit, suffix string) (field, tag string, ok bool) {
	if field, ok = byPath[n+"@"+unit+suffix]; ok {
		return field, bn, true
	}
	if n != "" {
		if field, ok = byPath[n+suffix]; ok {
			return field, bn, true
		}
	}
	if bn == "" {
		return "", "", false
	}
	if field, ok = byPath[bn+n+"@"+unit+suffix]; ok {
		return field, "", true
	}
	field, ok = byPath[bn+n+suffix]
	return field, "", ok
}

// checkSenMLName checks a resolved name as RFC 8428 section 4.5.1 says:
// letters, digits, "-", ":", ".", "/" and "_", starting with a letter or
// digit.
func checkSenMLName(name string) error {
	if name == "" {
		return fmt.Errorf("the record has no name: neither n nor a base name bn (RFC 8428 section 4.5.1)")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("name %q must start with a letter or a digit (RFC 8428 section 4.5.1)", Clip(name))
		}
		if !alnum && !strings.ContainsRune("-:./_", rune(c)) {
			return fmt.Errorf("name %q holds %q: a SenML name holds only letters, digits, - : . / _ (RFC 8428 section 4.5.1)", Clip(name), Clip(string(rune(c))))
		}
	}
	return nil
}

// checkSenMLValues checks that a record holds exactly one value (v, vs, vb
// or vd), or none but a sum or a base value or sum of its own (RFC 8428
// section 4.2).
func checkSenMLValues(r *senmlRecord) error {
	n := 0
	for _, given := range [...]bool{r.Value != nil, r.String != nil, r.Bool != nil, r.Data != nil} {
		if given {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("a record holds one value, and this one holds %d of v, vs, vb and vd (RFC 8428 section 4.2)", n)
	case n == 0 && r.Sum == nil && r.BaseValue == nil && r.BaseSum == nil:
		return fmt.Errorf("the record holds no value (v, vs, vb or vd) and no sum (s) (RFC 8428 section 4.2)")
	}
	return nil
}

// senmlSumValue is a record's resolved sum (base sum + s) for a float or
// int field.
func senmlSumValue(r *senmlRecord, baseSum float64, spec FieldSpec) (lineprotocol.Value, error) {
	if r.Sum == nil && r.BaseSum == nil {
		return lineprotocol.Value{}, fmt.Errorf("want a sum (s)")
	}
	var s float64
	if r.Sum != nil {
		s = *r.Sum
	}
	return senmlNumber(baseSum+s, spec)
}

func senmlValue(r *senmlRecord, baseValue float64, spec FieldSpec) (lineprotocol.Value, error) {
	switch spec.Type {
	case TypeFloat, TypeInt:
		// A record's own base value with no v is its value (bv + 0).
		if r.Value == nil && (r.BaseValue == nil || r.String != nil || r.Bool != nil || r.Data != nil) {
			return lineprotocol.Value{}, fmt.Errorf("want a numeric value (v)")
		}
		var v float64
		if r.Value != nil {
			v = *r.Value
		}
		return senmlNumber(baseValue+v, spec)
	case TypeBool:
		if r.Bool == nil {
			return lineprotocol.Value{}, fmt.Errorf("want a boolean value (vb)")
		}
		return lineprotocol.BoolValue(*r.Bool), nil
	case TypeString:
		// A data value (vd) is stored as it came: base64url text.
		s := r.String
		if s == nil {
			s = r.Data
		}
		if s == nil {
			return lineprotocol.Value{}, fmt.Errorf("want a string value (vs) or a data value (vd)")
		}
		v, ok := lineprotocol.StringValue(*s)
		if !ok {
			return lineprotocol.Value{}, fmt.Errorf("string is not valid UTF-8")
		}
		return v, nil
	}
	return lineprotocol.Value{}, fmt.Errorf("unknown type %q", spec.Type)
}

// senmlNumber checks a resolved number against a float or int field.
func senmlNumber(x float64, spec FieldSpec) (lineprotocol.Value, error) {
	if err := inRange(x, &spec); err != nil {
		return lineprotocol.Value{}, err
	}
	if spec.Type == TypeInt {
		if x != math.Trunc(x) || math.Abs(x) >= math.MaxInt64 {
			return lineprotocol.Value{}, fmt.Errorf("%v is not a 64-bit integer", x)
		}
		return lineprotocol.IntValue(int64(x)), nil
	}
	v, ok := lineprotocol.FloatValue(x)
	if !ok {
		return lineprotocol.Value{}, fmt.Errorf("%v is not a finite number", x)
	}
	return v, nil
}
