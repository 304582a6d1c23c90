package feed

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// decodeNGSI reads FIWARE entities: NGSI v2 or NGSI-LD, normalized
// ({"NO2": {"type": "Number", "value": 22}}) or keyValues ({"NO2": 22}).
// The payload is an entity, an array of entities, or a notification whose
// "data" holds them. Each entity is one reading: its id and type become the
// tags entity_id and entity_type; each field's path names an attribute, and
// an attribute that is an object with a "value" gives that value; a path
// attr.sub (location.coordinates.0) goes on into the attribute's value. The time
// path names an attribute too; an ISO 8601 interval ("start/end") gives its
// start.
func decodeNGSI(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error) {
	if !gjson.ValidBytes(payload) {
		return nil, fmt.Errorf("payload is not valid JSON")
	}
	root := gjson.ParseBytes(payload)
	if root.IsObject() && root.Get("data").IsArray() {
		root = root.Get("data") // a notification (v2 or LD)
	}
	entities := []gjson.Result{root}
	if root.IsArray() {
		entities = root.Array()
	}
	var points []Point
	for i, e := range entities {
		p, err := ngsiEntity(f, topic, e, received)
		if err != nil {
			if len(entities) > 1 {
				return nil, fmt.Errorf("entity %d: %w", i+1, err)
			}
			return nil, err
		}
		points = append(points, p)
	}
	return points, nil
}

// attribute returns an attribute's value, normalized or not.
func attribute(e gjson.Result, name string) gjson.Result {
	r := e.Get(gjson.Escape(name))
	if !r.Exists() {
		// attr.sub.path: a path into the attribute's value, such as a
		// station's position in its GeoJSON location (location.coordinates.0
		// for the longitude) or address.addressLocality.
		if attr, rest, ok := strings.Cut(name, "."); ok && rest != "" {
			if v := attribute(e, attr); v.IsObject() || v.IsArray() {
				return v.Get(rest)
			}
		}
		return r
	}
	if r.IsObject() {
		if v := r.Get("value"); v.Exists() {
			r = v
		} else if v := r.Get("object"); v.Exists() && r.Get("type").String() == "Relationship" {
			r = v // an NGSI-LD Relationship: {"type": "Relationship", "object": "urn:..."}
		}
	}
	if r.IsObject() {
		if v := r.Get("@value"); v.Exists() { // an LD typed literal: {"@type": "DateTime", "@value": ...}
			r = v
		}
	}
	return r
}

func ngsiEntity(f *Feed, topic string, e gjson.Result, received time.Time) (Point, error) {
	if !e.IsObject() {
		return Point{}, fmt.Errorf("an entity must be a JSON object, not %s", jsonKind(e))
	}
	id, typ := e.Get("id").String(), e.Get("type").String()
	if id == "" || typ == "" {
		return Point{}, fmt.Errorf("an entity needs an id and a type")
	}
	p := Point{Measurement: f.spec.Measurement, Time: received}
	f.addTopicTags(&p, topic)
	p.Tags = setTag(p.Tags, TagEntityID, id)
	p.Tags = setTag(p.Tags, tagEntityType, typ)
	for i, name := range f.tagNames {
		r := attribute(e, f.tagSpecs[i].Path)
		if r.Exists() && r.Type != gjson.Null && !r.IsObject() && !r.IsArray() && r.String() != "" {
			p.Tags = setTag(p.Tags, name, r.String())
		}
	}
	for i, name := range f.fieldNames {
		spec := &f.fieldSpecs[i]
		r := attribute(e, spec.Path)
		if !r.Exists() || r.Type == gjson.Null {
			if spec.Optional {
				continue
			}
			return Point{}, fmt.Errorf("attribute %s (field %s) is missing", spec.Path, name)
		}
		v, err := jsonValue(&r, spec)
		if err != nil {
			return Point{}, fmt.Errorf("attribute %s (field %s): %w", spec.Path, name, err)
		}
		p.Fields = append(p.Fields, Field{name, v})
	}
	if len(p.Fields) == 0 {
		return Point{}, fmt.Errorf("entity %s has none of the feed's attributes", id)
	}
	if ts := f.spec.Time; ts != nil {
		r := attribute(e, ts.Path)
		if r.Type != gjson.String {
			return Point{}, fmt.Errorf("time attribute %s is missing or not a string", ts.Path)
		}
		t, err := ParseISO8601(r.Str)
		if err != nil {
			return Point{}, fmt.Errorf("time attribute %s: %q: %w", ts.Path, Clip(r.Str), err)
		}
		p.Time = t
	}
	return p, nil
}

// isoLayouts are the ISO 8601 date-times NGSI publishers send, as FIWARE
// Orion and the NGSI-LD specification read them: with a zone as Z,
// +01:00, +0100 or +01, or none (UTC, as Orion reads it), with or without
// fractions of a second or seconds, or a date alone (its midnight, UTC).
var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseISO8601 reads an NGSI date-time (isoLayouts); an interval
// ("start/end", or "start/duration") gives its start.
func ParseISO8601(s string) (time.Time, error) {
	start, _, interval := strings.Cut(s, "/")
	if interval && strings.HasPrefix(start, "P") {
		return time.Time{}, errors.New("an interval given by its duration and end: its start is not read")
	}
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, start); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 date-time (2016-03-15T11:00:00Z, with or without a zone, or a date)")
}
