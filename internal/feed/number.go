package feed

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// decodeNumber reads a payload that is one number as text ("21.5"), the
// simplest thing a sensor gateway publishes: the value of the feed's one
// field, tagged from the topic and stamped on receipt.
func decodeNumber(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error) {
	var name string
	var spec FieldSpec
	for name, spec = range f.spec.Fields {
	}
	text := string(bytes.TrimSpace(payload))
	x, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return nil, fmt.Errorf("payload %q is not a finite number", Clip(text))
	}
	if err := inRange(x, &spec); err != nil {
		return nil, fmt.Errorf("field %s: %w", name, err)
	}
	p := Point{Measurement: f.spec.Measurement, Time: received}
	f.addTopicTags(&p, topic)
	if spec.Type == TypeInt {
		// Read as an integer, exactly: a float holds integers exactly only
		// up to 2^53 (9007199254740993 would be stored as ...992).
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 || strings.ContainsAny(text, ".eE") && math.Abs(x) > 1<<53 {
				return nil, fmt.Errorf("field %s: %s is not a 64-bit integer", name, Clip(text))
			}
			n = int64(x) // 12.0 or 1e3: an integer written as a float, small enough to be exact
		}
		p.Fields = []Field{{name, lineprotocol.IntValue(n)}}
		return []Point{p}, nil
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && (n > 1<<53 || n < -(1<<53)) {
		// An integer a float cannot hold: stored, it would be another number.
		return nil, fmt.Errorf("field %s: %s is beyond what a float holds exactly: declare the field int", name, Clip(text))
	}
	v, _ := lineprotocol.FloatValue(x)
	p.Fields = []Field{{name, v}}
	return []Point{p}, nil
}
