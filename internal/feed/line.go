package feed

import (
	"fmt"
	"math"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

var precisions = map[string]lineprotocol.Precision{
	LayoutUnixS:  lineprotocol.Second,
	LayoutUnixMS: lineprotocol.Millisecond,
	LayoutUnixUS: lineprotocol.Microsecond,
	LayoutUnixNS: lineprotocol.Nanosecond,
}

// decodeLine reads one point per line of InfluxDB line protocol. One bad
// line rejects the whole message, so a message is stored whole or not at all.
func decodeLine(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error) {
	prec := lineprotocol.Nanosecond
	if f.spec.Time != nil {
		prec = precisions[f.spec.Time.Layout]
	}
	// The payload tags named in the spec are renamed from their path.
	tagByPath := make(map[string]string, len(f.spec.Tags))
	for name, t := range f.spec.Tags {
		tagByPath[t.Path] = name
	}
	fieldByPath := make(map[string]string, len(f.spec.Fields))
	for name, fs := range f.spec.Fields {
		fieldByPath[fs.Path] = name
	}
	dec := lineprotocol.NewDecoderWithBytes(payload)
	var points []Point
	for line := 1; dec.Next(); line++ {
		m, err := dec.Measurement()
		if err != nil {
			return nil, err
		}
		p := Point{Measurement: string(m)}
		if f.spec.Measurement != "" {
			p.Measurement = f.spec.Measurement
		}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			key := string(k)
			if key == "time" {
				return nil, fmt.Errorf("line %d: a tag named time, which InfluxDB refuses", line)
			}
			if name, ok := tagByPath[key]; ok {
				key = name
			}
			p.Tags = append(p.Tags, Tag{key, string(v)})
		}
		for _, tt := range f.topicTags {
			level := topicLevel(topic, tt.level)
			if own, ok := p.Tag(tt.name); ok && level != "" && own != level {
				return nil, fmt.Errorf("line %d: tag %s is both the topic's (%s) and the line's (%s)", line, tt.name, Clip(level), Clip(own))
			}
		}
		f.addTopicTags(&p, topic)
		seen := 0
		for {
			k, v, err := dec.NextField()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			key := string(k)
			if len(f.spec.Fields) > 0 {
				name, ok := fieldByPath[key]
				if !ok {
					continue
				}
				key = name
				v, err = lineValue(v, f.spec.Fields[name])
				if err != nil {
					return nil, fmt.Errorf("line %d: field %s: %w", line, name, err)
				}
				seen++
			} else if v.Kind() == lineprotocol.Float && (math.IsNaN(v.FloatV()) || math.IsInf(v.FloatV(), 0)) {
				return nil, fmt.Errorf("line %d: field %s is not a finite number", line, key)
			} else if v.Kind() == lineprotocol.Uint {
				// InfluxDB 1.x stores no unsigned integers: one that fits is
				// stored as a signed integer, as a declared int field is.
				if v.UintV() > math.MaxInt64 {
					return nil, fmt.Errorf("line %d: field %s: the unsigned %du is beyond a signed 64-bit integer, which InfluxDB 1.x cannot store", line, key, v.UintV())
				}
				v = lineprotocol.IntValue(int64(v.UintV()))
			}
			if key == "time" {
				return nil, fmt.Errorf("line %d: a field named time, which InfluxDB refuses", line)
			}
			p.Fields = append(p.Fields, Field{key, v})
		}
		for name, fs := range f.spec.Fields {
			if !fs.Optional && !hasField(p.Fields, name) {
				return nil, fmt.Errorf("line %d: field %s (key %q) is missing", line, name, fs.Path)
			}
		}
		if len(p.Fields) == 0 {
			return nil, fmt.Errorf("line %d: has none of the feed's fields", line)
		}
		t, err := dec.Time(prec, received)
		if err != nil {
			return nil, err
		}
		p.Time = t.UTC()
		points = append(points, p)
	}
	if err := dec.Err(); err != nil {
		return nil, err
	}
	return points, nil
}

func hasField(fields []Field, key string) bool {
	for _, f := range fields {
		if f.Key == key {
			return true
		}
	}
	return false
}

// lineValue checks a line-protocol value against its declared type. Integer
// literals are accepted for float fields (1i reads as 1.0), since senders
// rarely know InfluxDB's types; nothing else is converted.
func lineValue(v lineprotocol.Value, spec FieldSpec) (lineprotocol.Value, error) {
	kind := v.Kind()
	switch spec.Type {
	case TypeFloat:
		var x float64
		switch kind {
		case lineprotocol.Float:
			x = v.FloatV()
		case lineprotocol.Int:
			x = float64(v.IntV())
		case lineprotocol.Uint:
			x = float64(v.UintV())
		default:
			return v, fmt.Errorf("want a float, got %s %s", kind, Clip(v.String()))
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return v, fmt.Errorf("%v is not a finite number", x)
		}
		if err := inRange(x, &spec); err != nil {
			return v, err
		}
		out, _ := lineprotocol.FloatValue(x)
		return out, nil
	case TypeInt:
		var n int64
		switch kind {
		case lineprotocol.Int:
			n = v.IntV()
		case lineprotocol.Uint:
			if v.UintV() > math.MaxInt64 {
				return v, fmt.Errorf("%d is out of range for int", v.UintV())
			}
			n = int64(v.UintV())
		default:
			return v, fmt.Errorf("want an integer (1i), got %s %s", kind, Clip(v.String()))
		}
		if err := inRange(float64(n), &spec); err != nil {
			return v, err
		}
		return lineprotocol.IntValue(n), nil
	case TypeBool:
		if kind != lineprotocol.Bool {
			return v, fmt.Errorf("want a bool, got %s %s", kind, Clip(v.String()))
		}
	case TypeString:
		if kind != lineprotocol.String {
			return v, fmt.Errorf("want a string, got %s %s", kind, Clip(v.String()))
		}
	}
	return v, nil
}
