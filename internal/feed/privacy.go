package feed

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// withheld replaces a payload that cannot be scrubbed (not JSON, or nested
// beyond reason) on a topic that carries personal data: what is not
// understood is not kept.
const withheld = "[payload withheld: not valid JSON, and its topic carries personal data]"

// maxScrubDepth bounds how deep a payload on a protected topic may nest.
const maxScrubDepth = 64

// PrivacyRule binds personal-data paths to an MQTT topic filter, whatever
// feed reads the topic. It is the main file's privacy section; each feed's
// own private list is a rule on the feed's topic.
type PrivacyRule struct {
	// Topic is an MQTT filter ("city/hotline/#"); every message on a topic
	// it matches is scrubbed.
	Topic string `yaml:"topic" json:"topic"`
	// Paths are the personal data in those messages.
	Paths []PrivateSpec `yaml:"paths" json:"paths"`
}

// Privacy is every personal-data rule of the server. Scrub applies the
// rules of a message's topic before anything keeps, shows or decodes it,
// so a second feed on the same topic, a preview or a replay sees only what
// the rules let through.
type Privacy struct {
	rules []privacyRule
}

type privacyRule struct {
	filter string
	origin string     // "privacy.0" or "feed hotline", for problems
	keys   [][]string // each path's keys, array indexes left out
	drop   []bool
}

// NewPrivacy compiles the server's rules and each feed's private list.
// Rules and specs are expected to be valid (Validate, CheckPrivacy).
func NewPrivacy(server []PrivacyRule, feeds []Spec) *Privacy {
	p := &Privacy{}
	for i, r := range server {
		p.add(r.Topic, fmt.Sprintf("privacy.%d", i), r.Paths)
	}
	for _, s := range feeds {
		if len(s.Private) > 0 {
			p.add(s.Filter(), "feed "+s.ID, s.Private)
		}
	}
	return p
}

func (p *Privacy) add(filter, origin string, paths []PrivateSpec) {
	r := privacyRule{filter: filter, origin: origin}
	for _, ps := range paths {
		r.keys = append(r.keys, pathKeys(ps.Path))
		r.drop = append(r.drop, ps.Action == PrivateDrop)
	}
	p.rules = append(p.rules, r)
}

// pathKeys splits a dotted path into its keys, leaving out array indexes:
// a rule holds for every element of every array on its way.
func pathKeys(path string) []string {
	var keys []string
	for k := range strings.SplitSeq(path, ".") {
		if _, err := strconv.Atoi(k); err == nil || k == "" {
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

// CheckPrivacy reports what is wrong with the main file's privacy rules.
func CheckPrivacy(rules []PrivacyRule) []Problem {
	var ps []Problem
	for i, r := range rules {
		key := fmt.Sprintf("privacy.%d", i)
		if err := CheckFilter(r.Topic); err != nil {
			ps = append(ps, Problem{key + ".topic", err.Error()})
		}
		if len(r.Paths) == 0 {
			ps = append(ps, Problem{key + ".paths", "name at least one path"})
		}
		for j, p := range r.Paths {
			ps = append(ps, checkPrivatePath(fmt.Sprintf("%s.paths.%d", key, j), p)...)
		}
	}
	return ps
}

func checkPrivatePath(key string, p PrivateSpec) []Problem {
	var ps []Problem
	switch {
	case p.Path == "":
		ps = append(ps, Problem{key + ".path", "is required"})
	case strings.ContainsAny(p.Path, "#*?|@\\"):
		ps = append(ps, Problem{key + ".path", fmt.Sprintf("%q: a plain path of keys and indexes, without # * ? | @ \\", p.Path)})
	case len(pathKeys(p.Path)) == 0:
		ps = append(ps, Problem{key + ".path", fmt.Sprintf("%q names no key", p.Path)})
	}
	switch p.Action {
	case "", PrivateMask, PrivateDrop:
	default:
		ps = append(ps, Problem{key + ".action", fmt.Sprintf("%q: want mask or drop", p.Action)})
	}
	return ps
}

// CheckFilter reports what is wrong with an MQTT topic filter, if anything.
func CheckFilter(filter string) error {
	switch {
	case filter == "" || len(filter) > 1024:
		return fmt.Errorf("a topic filter of 1 to 1024 bytes is required")
	case strings.ContainsRune(filter, 0):
		return fmt.Errorf("%q: a topic must not contain NUL", filter)
	case !utf8.ValidString(filter):
		return fmt.Errorf("%q: a topic must be UTF-8", filter)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%q: # may only be the last level", filter)
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("%q: + and # must stand alone in a level", filter)
		}
	}
	return nil
}

// Check reports the feed's fields and tags that would read what a rule on
// an overlapping topic protects: a field never may, a tag only a masked
// value. Registering such a feed is refused, so that nobody reads personal
// data by defining a feed.
func (p *Privacy) Check(s Spec) []Problem {
	var ps []Problem
	filter := s.Filter()
	for _, r := range p.rules {
		if !FiltersOverlap(r.filter, filter) {
			continue
		}
		for _, name := range sortedKeys(s.Fields) {
			path := pathKeys(s.Fields[name].Path)
			for i := range r.keys {
				if protects(r.keys[i], path) {
					ps = append(ps, Problem{"fields." + name + ".path", fmt.Sprintf("%q is personal data (%s): it is not stored as a field", s.Fields[name].Path, r.origin)})
				}
			}
		}
		for _, name := range sortedKeys(s.Tags) {
			path := pathKeys(s.Tags[name].Path)
			for i := range r.keys {
				if r.drop[i] && protects(r.keys[i], path) {
					ps = append(ps, Problem{"tags." + name + ".path", fmt.Sprintf("%q is personal data dropped by %s: no feed may read it", s.Tags[name].Path, r.origin)})
				}
			}
		}
	}
	return ps
}

// protects reports whether a rule's keys cover a path: the path reaches
// the protected value or goes inside it.
func protects(rule, path []string) bool {
	for end := len(path); end > 0; end-- {
		if endsWith(path[:end], rule) {
			return true
		}
	}
	return false
}

// Protected reports whether any rule covers a topic.
func (p *Privacy) Protected(topic string) bool {
	for _, r := range p.rules {
		if MatchFilter(r.filter, topic) {
			return true
		}
	}
	return false
}

// Scrub masks or drops every protected value of a payload on topic:
// wherever its path appears (at any depth, in every array element, and in
// every member of a repeated key), as an NGSI attribute's value too. A
// payload on a protected topic that is not JSON is withheld. Without a
// rule for the topic the payload is returned as it is.
func (p *Privacy) Scrub(topic string, payload []byte) []byte {
	if p == nil {
		return payload
	}
	var keys [][]string
	var drop []bool
	for _, r := range p.rules {
		if MatchFilter(r.filter, topic) {
			keys = append(keys, r.keys...)
			drop = append(drop, r.drop...)
		}
	}
	if len(keys) == 0 {
		return payload
	}
	if !gjson.ValidBytes(payload) {
		return []byte(withheld)
	}
	s := scrubber{keys: keys, drop: drop}
	var buf bytes.Buffer
	if !s.value(&buf, gjson.ParseBytes(payload), nil, 0) {
		return []byte(withheld)
	}
	return buf.Bytes()
}

type scrubber struct {
	keys [][]string
	drop []bool
}

// value writes v with its protected members scrubbed; path holds the
// object keys that lead to it. It reports false when v nests too deep.
func (s *scrubber) value(buf *bytes.Buffer, v gjson.Result, path []string, depth int) bool {
	if depth > maxScrubDepth {
		return false
	}
	ok := true
	switch {
	case v.IsObject():
		buf.WriteByte('{')
		first := true
		v.ForEach(func(k, m gjson.Result) bool {
			p := append(path[:len(path):len(path)], k.String())
			act := s.action(p)
			if act == actDrop {
				return true
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.WriteString(k.Raw)
			buf.WriteByte(':')
			if act == actMask {
				ok = maskAll(buf, m, depth+1)
			} else {
				ok = s.value(buf, m, p, depth+1)
			}
			return ok
		})
		buf.WriteByte('}')
	case v.IsArray():
		ok = writeArray(buf, v, func(m gjson.Result) bool { return s.value(buf, m, path, depth+1) })
	default:
		buf.WriteString(v.Raw)
	}
	return ok
}

// writeArray writes the array v, each element by elem, stopping when elem
// reports false.
func writeArray(buf *bytes.Buffer, v gjson.Result, elem func(gjson.Result) bool) bool {
	ok := true
	buf.WriteByte('[')
	i := 0
	v.ForEach(func(_, m gjson.Result) bool {
		if i > 0 {
			buf.WriteByte(',')
		}
		i++
		ok = elem(m)
		return ok
	})
	buf.WriteByte(']')
	return ok
}

type action int

const (
	actKeep action = iota
	actMask
	actDrop
)

// action is what the rules do to the member at path: drop wins over mask.
// A path matches a rule that it ends with, compared without case, with or
// without the "value" levels of NGSI's normalized form.
func (s *scrubber) action(path []string) action {
	act := actKeep
	var bare []string // path without NGSI's value levels
	for i, keys := range s.keys {
		if !endsWith(path, keys) {
			if bare == nil {
				bare = withoutValue(path)
			}
			if !endsWith(bare, keys) {
				continue
			}
		}
		if s.drop[i] {
			return actDrop
		}
		act = actMask
	}
	return act
}

func endsWith(path, keys []string) bool {
	if len(keys) > len(path) {
		return false
	}
	tail := path[len(path)-len(keys):]
	for i := range keys {
		if !strings.EqualFold(tail[i], keys[i]) {
			return false
		}
	}
	return true
}

func withoutValue(path []string) []string {
	out := make([]string, 0, len(path))
	for _, k := range path {
		if k != "value" {
			out = append(out, k)
		}
	}
	return out
}

// maskAll writes v with every string and number in it masked: a value, or
// each element and member of an array or object. An NGSI attribute
// ({"type", "value"}) keeps its type.
func maskAll(buf *bytes.Buffer, v gjson.Result, depth int) bool {
	if depth > maxScrubDepth {
		return false
	}
	ok := true
	switch {
	case v.IsObject():
		ngsi := v.Get("value").Exists() && v.Get("type").Type == gjson.String
		buf.WriteByte('{')
		first := true
		v.ForEach(func(k, m gjson.Result) bool {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.WriteString(k.Raw)
			buf.WriteByte(':')
			if ngsi && k.String() == "type" {
				buf.WriteString(m.Raw)
				return true
			}
			ok = maskAll(buf, m, depth+1)
			return ok
		})
		buf.WriteByte('}')
	case v.IsArray():
		ok = writeArray(buf, v, func(m gjson.Result) bool { return maskAll(buf, m, depth+1) })
	case v.Type == gjson.String || v.Type == gjson.Number:
		buf.WriteString(strconv.Quote(Mask(v)))
	default:
		buf.WriteString(v.Raw) // true, false, null
	}
	return ok
}

// FiltersOverlap reports whether some topic matches both MQTT filters.
func FiltersOverlap(a, b string) bool {
	if strings.HasPrefix(a, "$") != strings.HasPrefix(b, "$") {
		// A $ topic matches only filters that name its first level.
		al, _, _ := strings.Cut(a, "/")
		bl, _, _ := strings.Cut(b, "/")
		if al == "#" || al == "+" || bl == "#" || bl == "+" {
			return false
		}
	}
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#"
		case !bmore:
			return arest == "#"
		}
		a, b = arest, brest
	}
}

// Mask hides the middle of a value, keeping its shape: 13812345678 becomes
// 138****5678, 张三 becomes 张*. What is not a string or number becomes "***".
func Mask(v gjson.Result) string {
	var s string
	switch v.Type {
	case gjson.String:
		s = v.Str
	case gjson.Number:
		s = v.Raw
	default:
		return "***"
	}
	r := []rune(s)
	n := len(r)
	switch {
	case n >= 11: // phone and ID-card numbers: the first three, the last four
		return string(r[:3]) + strings.Repeat("*", n-7) + string(r[n-4:])
	case n >= 4:
		return string(r[:1]) + strings.Repeat("*", n-2) + string(r[n-1:])
	case n >= 2: // names: the family name
		return string(r[:1]) + strings.Repeat("*", n-1)
	default:
		return "*"
	}
}
