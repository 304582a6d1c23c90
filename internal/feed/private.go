package feed

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// withheld replaces a payload that cannot be scrubbed (not JSON) in a feed
// that declares personal data: what is not understood is not kept.
const withheld = "[payload withheld: not valid JSON, and the feed declares personal data]"

// Scrub masks or drops the feed's private paths in a payload, in each
// record for records feeds. It returns the payload unchanged when the feed
// declares no personal data. Call it before anything keeps or shows the
// payload.
func (f *Feed) Scrub(payload []byte) []byte {
	private := f.spec.Private
	if len(private) == 0 {
		return payload
	}
	if !gjson.ValidBytes(payload) {
		return []byte(withheld)
	}
	out := payload
	for _, prefix := range f.recordPrefixes(payload) {
		for _, p := range private {
			path := prefix + p.Path
			v := gjson.GetBytes(out, path)
			if !v.Exists() {
				continue
			}
			var err error
			if p.Action == PrivateDrop {
				out, err = sjson.DeleteBytes(out, path)
			} else {
				out, err = sjson.SetBytes(out, path, Mask(v))
			}
			if err != nil {
				return []byte(withheld)
			}
		}
	}
	return out
}

// recordPrefixes are the paths of the readings in a payload: each element
// of the records array (or of a top-level array), else the payload itself.
func (f *Feed) recordPrefixes(payload []byte) []string {
	arr := gjson.ParseBytes(payload)
	prefix := ""
	if f.spec.Records != "" {
		arr = arr.Get(f.spec.Records)
		prefix = f.spec.Records + "."
	}
	if !arr.IsArray() {
		return []string{""}
	}
	n := len(arr.Array())
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i) + "."
	}
	return out
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
