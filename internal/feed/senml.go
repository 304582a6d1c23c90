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

// senmlRecord is one record of a SenML pack (RFC 8428, JSON).
type senmlRecord struct {
	BaseName  string   `json:"bn"`
	BaseTime  float64  `json:"bt"`
	BaseUnit  string   `json:"bu"`
	BaseValue float64  `json:"bv"`
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

// senmlRelative: resolved times below 2^28 are relative to now (RFC 8428 4.5.3).
const senmlRelative = 1 << 28

// decodeSenML reads a SenML pack. Records are resolved as RFC 8428 says
// (base name + name, base time + time, base value + value); those with the
// same base name and time make one point, whose fields are the records
// whose name (n, without the base name) is a declared field's path. The
// base name, if any, becomes the tag base_name.
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
	// A field's path is a record's name (n, without the base name), or
	// NAME@UNIT to take only the records of that unit, or @UNIT for
	// records that have no name of their own (RFC 8428's measurements told
	// apart by unit alone).
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
	var base senmlRecord
	for i, r := range pack {
		if r.BaseName != "" {
			base.BaseName = r.BaseName
		}
		if r.BaseTime != 0 {
			base.BaseTime = r.BaseTime
		}
		if r.BaseValue != 0 {
			base.BaseValue = r.BaseValue
		}
		if r.BaseUnit != "" {
			base.BaseUnit = r.BaseUnit
		}
		if r.Version > 10 {
			return nil, fmt.Errorf("record %d: SenML version %d is not supported", i+1, r.Version)
		}
		t := base.BaseTime + r.Time
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
			unit = base.BaseUnit
		}
		field, ok := fieldByPath[r.Name+"@"+unit]
		if !ok && r.Name != "" {
			field, ok = fieldByPath[r.Name]
		}
		if !ok {
			continue // not a field this feed stores
		}
		v, err := senmlValue(r, base.BaseValue, f.spec.Fields[field])
		if err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i+1, base.BaseName+r.Name, err)
		}
		k := key{base.BaseName, at.UnixNano()}
		p := points[k]
		if p == nil {
			p = &Point{Measurement: f.spec.Measurement, Time: at}
			f.addTopicTags(p, topic)
			if base.BaseName != "" {
				p.Tags = setTag(p.Tags, tagBaseName, base.BaseName)
			}
			points[k] = p
			order = append(order, k)
		}
		if hasField(p.Fields, field) {
			return nil, fmt.Errorf("record %d: %s is given twice for one time", i+1, base.BaseName+r.Name)
		}
		p.Fields = append(p.Fields, Field{field, v})
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

func senmlValue(r senmlRecord, baseValue float64, spec FieldSpec) (lineprotocol.Value, error) {
	switch spec.Type {
	case TypeFloat, TypeInt:
		if r.Value == nil {
			return lineprotocol.Value{}, fmt.Errorf("want a numeric value (v)")
		}
		x := baseValue + *r.Value
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
	case TypeBool:
		if r.Bool == nil {
			return lineprotocol.Value{}, fmt.Errorf("want a boolean value (vb)")
		}
		return lineprotocol.BoolValue(*r.Bool), nil
	case TypeString:
		if r.String == nil {
			return lineprotocol.Value{}, fmt.Errorf("want a string value (vs)")
		}
		v, ok := lineprotocol.StringValue(*r.String)
		if !ok {
			return lineprotocol.Value{}, fmt.Errorf("string is not valid UTF-8")
		}
		return v, nil
	}
	return lineprotocol.Value{}, fmt.Errorf("unknown type %q", spec.Type)
}
