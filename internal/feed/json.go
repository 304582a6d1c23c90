package feed

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/tidwall/gjson"
)

// decodeJSON reads one reading from a JSON object by the spec's paths, or
// one per element of an array (the payload, or the one at Records). One
// bad reading rejects the whole message.
func decodeJSON(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error) {
	if !gjson.ValidBytes(payload) {
		return nil, fmt.Errorf("payload is not valid JSON")
	}
	// The payload is read in place, not copied: nothing changes a message's
	// payload once it has arrived, and the strings taken from it (tag
	// values) keep it alive for as long as they are used.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(payload), len(payload)))
	if f.spec.Records != "" {
		root = root.Get(f.spec.Records)
		if !root.IsArray() {
			return nil, fmt.Errorf("records (path %q): want an array, got JSON %s", f.spec.Records, jsonKind(root))
		}
	}
	if !root.IsArray() {
		// One reading, the common case: its point, tags and fields in one
		// allocation when they fit.
		if len(f.topicTags)+len(f.tagNames) <= len(reading{}.tags) && len(f.fieldNames) <= len(reading{}.fields) {
			r := new(reading)
			r.points[0] = Point{Tags: r.tags[:0], Fields: r.fields[:0]}
			if err := jsonReading(f, topic, root, received, &r.points[0]); err != nil {
				return nil, err
			}
			return r.points[:], nil
		}
		var p Point
		if err := jsonReading(f, topic, root, received, &p); err != nil {
			return nil, err
		}
		return []Point{p}, nil
	}
	var points []Point
	var err error
	root.ForEach(func(_, r gjson.Result) bool {
		var p Point
		if err = jsonReading(f, topic, r, received, &p); err != nil {
			err = fmt.Errorf("reading %d: %w", len(points)+1, err)
			return false
		}
		points = append(points, p)
		return true
	})
	return points, err
}

// keyTree holds the feed's paths when each is a chain of plain keys
// (a.b.c): a reading's object is then walked once, nested objects on the
// way included, instead of once per path. A node's slot is where the value
// at its path goes, -1 for a node that is only on the way.
type keyTree struct {
	slot     int
	children []keyChild          // a scan is quicker than a map for a few
	byKey    map[string]*keyTree // when there are many
	slots    int                 // in the root: how many slots there are
	// pathSlot, in the root, is the slot of each of the feed's paths in
	// order: its tags' (by name), its fields' (by name), its time's.
	pathSlot []int
}

type keyChild struct {
	key  string
	node *keyTree
}

// manyKeys is the most children a node scans for a key; past it they
// are looked up in a map.
const manyKeys = 16

// child is the node under key, nil for none.
func (n *keyTree) child(key string) *keyTree {
	if n.byKey != nil {
		return n.byKey[key]
	}
	for i := range n.children {
		if n.children[i].key == key {
			return n.children[i].node
		}
	}
	return nil
}

// plainKeys builds the tree of the feed's paths (tags, fields, time); nil
// when one is not a chain of plain keys (a wildcard, a query, a modifier,
// an escape).
func plainKeys(f *Feed) *keyTree {
	var paths []string
	for _, t := range f.tagSpecs {
		paths = append(paths, t.Path)
	}
	for _, fs := range f.fieldSpecs {
		paths = append(paths, fs.Path)
	}
	if f.spec.Time != nil {
		paths = append(paths, f.spec.Time.Path)
	}
	root := &keyTree{slot: -1}
	byPath := map[string]int{}
	for _, path := range paths {
		if slot, ok := byPath[path]; ok {
			root.pathSlot = append(root.pathSlot, slot)
			continue
		}
		if path == "" || strings.ContainsAny(path, `*?#|@\!"`) {
			return nil
		}
		n := root
		for _, key := range strings.Split(path, ".") {
			if key == "" || strings.Trim(key, "0123456789") == "" {
				return nil // an empty key, or an index into an array
			}
			c := n.child(key)
			if c == nil {
				c = &keyTree{slot: -1}
				n.children = append(n.children, keyChild{key, c})
				switch {
				case n.byKey != nil:
					n.byKey[key] = c
				case len(n.children) > manyKeys:
					n.byKey = make(map[string]*keyTree, len(n.children))
					for _, kc := range n.children {
						n.byKey[kc.key] = kc.node
					}
				}
			}
			n = c
		}
		if n.slot >= 0 {
			return nil
		}
		n.slot = root.slots
		byPath[path] = root.slots
		root.pathSlot = append(root.pathSlot, root.slots)
		root.slots++
	}
	return root
}

// walk fills found from one object. Where a key repeats, the first value
// found for a path wins, looking into every object on the way, as with
// gjson's Get.
func (n *keyTree) walk(obj gjson.Result, found []gjson.Result) {
	obj.ForEach(func(k, v gjson.Result) bool {
		c := n.child(k.Str)
		if c == nil {
			return true
		}
		if c.slot >= 0 && !found[c.slot].Exists() {
			found[c.slot] = v
		}
		if c.children != nil && v.IsObject() {
			c.walk(v, found)
		}
		return true
	})
}

// lookup finds the value at each path: by one walk when the feed's paths
// are chains of plain keys, else by gjson's Get for each.
type lookup struct {
	tree  *keyTree
	found []gjson.Result // nil: use gjson's Get
}

// newLookup finds the values at the feed's paths in root, in space (a
// slice of the caller's, so that a few paths cost no allocation) when it
// is large enough.
func newLookup(f *Feed, root gjson.Result, space []gjson.Result) lookup {
	l := lookup{tree: f.keys}
	if f.keys == nil {
		return l
	}
	if cap(space) >= f.keys.slots {
		l.found = space[:f.keys.slots]
		clear(l.found)
	} else {
		l.found = make([]gjson.Result, f.keys.slots)
	}
	f.keys.walk(root, l.found)
	return l
}

// get returns the value at path, the feed's path number i (as in
// keyTree.pathSlot), in root, the object the lookup was made for.
func (l lookup) get(root gjson.Result, i int, path string) gjson.Result {
	if l.found == nil {
		return root.Get(path)
	}
	return l.found[l.tree.pathSlot[i]]
}

// reading holds one point with room for a few tags and fields.
type reading struct {
	points [1]Point
	tags   [6]Tag
	fields [6]Field
}

// jsonReading reads one reading from one JSON object into p, using the
// room p's Tags and Fields have (made when they have none).
func jsonReading(f *Feed, topic string, root gjson.Result, received time.Time, p *Point) error {
	if !root.IsObject() {
		return fmt.Errorf("payload is JSON %s, want an object", jsonKind(root))
	}
	var space [8]gjson.Result
	l := newLookup(f, root, space[:0])
	p.Measurement, p.Time = f.spec.Measurement, received
	if p.Tags == nil {
		p.Tags = make([]Tag, 0, len(f.topicTags)+len(f.tagNames))
	}
	if p.Fields == nil {
		p.Fields = make([]Field, 0, len(f.fieldNames))
	}
	f.addTopicTags(p, topic)
	for i, name := range f.tagNames {
		path := f.tagSpecs[i].Path
		r := l.get(root, i, path)
		if !r.Exists() || r.Type == gjson.Null {
			continue
		}
		if r.IsObject() || r.IsArray() {
			return fmt.Errorf("tag %s (path %q): want a string or number, got JSON %s", name, path, jsonKind(r))
		}
		if v := r.String(); v != "" {
			p.Tags = append(p.Tags, Tag{name, v})
		}
	}
	for i, name := range f.fieldNames {
		spec := &f.fieldSpecs[i]
		r := l.get(root, len(f.tagNames)+i, spec.Path)
		if !r.Exists() || r.Type == gjson.Null {
			if spec.Optional {
				continue
			}
			return fmt.Errorf("field %s (path %q) is missing", name, spec.Path)
		}
		v, err := jsonValue(&r, spec)
		if err != nil {
			return fmt.Errorf("field %s (path %q): %w", name, spec.Path, err)
		}
		p.Fields = append(p.Fields, Field{name, v})
	}
	if len(p.Fields) == 0 {
		return fmt.Errorf("payload has none of the feed's fields")
	}
	if ts := f.spec.Time; ts != nil {
		r := l.get(root, len(f.tagNames)+len(f.fieldNames), ts.Path)
		if !r.Exists() || r.Type == gjson.Null {
			return fmt.Errorf("time (path %q) is missing", ts.Path)
		}
		t, err := jsonTime(r, ts.Layout)
		if err != nil {
			return fmt.Errorf("time (path %q): %w", ts.Path, err)
		}
		p.Time = t
	}
	return nil
}

func jsonValue(r *gjson.Result, spec *FieldSpec) (lineprotocol.Value, error) {
	switch spec.Type {
	case TypeFloat:
		if r.Type != gjson.Number {
			return lineprotocol.Value{}, fmt.Errorf("want a number, got JSON %s %s", jsonKind(*r), Clip(r.Raw))
		}
		// gjson parsed the number already (strconv.ParseFloat, after the
		// payload was found to be valid JSON): too large a one is ±Inf.
		x := r.Num
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return lineprotocol.Value{}, fmt.Errorf("%s is not a finite number", Clip(r.Raw))
		}
		if err := inRange(x, spec); err != nil {
			return lineprotocol.Value{}, err
		}
		v, _ := lineprotocol.FloatValue(x)
		return v, nil
	case TypeInt:
		if r.Type != gjson.Number {
			return lineprotocol.Value{}, fmt.Errorf("want an integer, got JSON %s %s", jsonKind(*r), Clip(r.Raw))
		}
		// gjson parsed the number as a float already: below 2^53 in size
		// that is exact, and a whole one is the integer the text says
		// (an integer of 2^53 or more rounds to at least 2^53).
		var n int64
		var err error
		if x := r.Num; x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			n = int64(x)
		} else if n, err = strconv.ParseInt(r.Raw, 10, 64); err != nil {
			// 12.0 and 1e3 are integers written another way; 12.5 is not.
			x, ferr := strconv.ParseFloat(r.Raw, 64)
			if ferr != nil || x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
				return lineprotocol.Value{}, fmt.Errorf("%s is not a 64-bit integer", Clip(r.Raw))
			}
			n = int64(x)
		}
		if err := inRange(float64(n), spec); err != nil {
			return lineprotocol.Value{}, err
		}
		return lineprotocol.IntValue(n), nil
	case TypeBool:
		if r.Type != gjson.True && r.Type != gjson.False {
			return lineprotocol.Value{}, fmt.Errorf("want true or false, got JSON %s %s", jsonKind(*r), Clip(r.Raw))
		}
		return lineprotocol.BoolValue(r.Bool()), nil
	case TypeString:
		if r.Type != gjson.String {
			return lineprotocol.Value{}, fmt.Errorf("want a string, got JSON %s %s", jsonKind(*r), Clip(r.Raw))
		}
		v, ok := lineprotocol.StringValue(r.Str)
		if !ok {
			return lineprotocol.Value{}, fmt.Errorf("string is not valid UTF-8")
		}
		return v, nil
	}
	return lineprotocol.Value{}, fmt.Errorf("unknown type %q", spec.Type)
}

func inRange(x float64, spec *FieldSpec) error {
	if spec.Min != nil && x < *spec.Min {
		return fmt.Errorf("%v is below the minimum %v", x, *spec.Min)
	}
	if spec.Max != nil && x > *spec.Max {
		return fmt.Errorf("%v is above the maximum %v", x, *spec.Max)
	}
	return nil
}

func jsonTime(r gjson.Result, layout string) (time.Time, error) {
	if layout == LayoutRFC3339 {
		if r.Type != gjson.String {
			return time.Time{}, fmt.Errorf("want an RFC 3339 string, got JSON %s %s", jsonKind(r), Clip(r.Raw))
		}
		t, err := time.Parse(time.RFC3339Nano, r.Str)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", Clip(r.Str))
		}
		return t, nil
	}
	if r.Type != gjson.Number {
		return time.Time{}, fmt.Errorf("want a %s number, got JSON %s %s", layout, jsonKind(r), Clip(r.Raw))
	}
	if n, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
		return unixTime(n, layout), nil
	}
	x, err := strconv.ParseFloat(r.Raw, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1e18 {
		return time.Time{}, fmt.Errorf("%s is not a %s timestamp", Clip(r.Raw), layout)
	}
	// Fractional seconds (1700000000.25) are common; keep the fraction.
	unit := map[string]float64{LayoutUnixS: 1e9, LayoutUnixMS: 1e6, LayoutUnixUS: 1e3, LayoutUnixNS: 1}[layout]
	ns := x * unit
	if math.Abs(ns) > math.MaxInt64 {
		return time.Time{}, fmt.Errorf("%s is out of range for %s", Clip(r.Raw), layout)
	}
	return time.Unix(0, int64(ns)).UTC(), nil
}

func unixTime(n int64, layout string) time.Time {
	switch layout {
	case LayoutUnixS:
		return time.Unix(n, 0).UTC()
	case LayoutUnixMS:
		return time.UnixMilli(n).UTC()
	case LayoutUnixUS:
		return time.UnixMicro(n).UTC()
	}
	return time.Unix(0, n).UTC()
}

func jsonKind(r gjson.Result) string {
	switch {
	case r.IsObject():
		return "object"
	case r.IsArray():
		return "array"
	}
	switch r.Type {
	case gjson.Number:
		return "number"
	case gjson.String:
		return "string"
	case gjson.True, gjson.False:
		return "bool"
	case gjson.Null:
		return "null"
	}
	return "value"
}

// Clip shortens an excerpt of a payload quoted in a reason or a log.
func Clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
