package feed

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
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
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return nil, fmt.Errorf("field %s: %s is not a 64-bit integer", name, Clip(text))
		}
		p.Fields = []Field{{name, lineprotocol.IntValue(int64(x))}}
		return []Point{p}, nil
	}
	v, _ := lineprotocol.FloatValue(x)
	p.Fields = []Field{{name, v}}
	return []Point{p}, nil
}
