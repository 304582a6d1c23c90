// Package partial holds mergeable partial aggregates: what one instance
// computed of a panel over its share of a stream in one time bucket, in a
// form that travels through the broker and merges with the other shares'
// partials into what one instance would have computed over the whole
// stream. Counts and sums add, minimum and maximum take the extreme, and
// quantiles come from DDSketches, whose merge is exact (the merged sketch
// is the sketch of all the values). docs/scaling.md says how screen
// instances could merge partials instead of each taking the full stream.
package partial

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// The sketches' relative accuracy and size, as the panels' percentiles.
const (
	sketchAccuracy = 0.01
	sketchBins     = 1024
)

// Partial is one panel's aggregate over one share of a stream, for one
// group of tags and one time bucket.
type Partial struct {
	Panel  string            `json:"panel"`
	Tags   map[string]string `json:"tags,omitempty"`
	Bucket time.Time         `json:"bucket"` // the bucket's start
	Count  float64           `json:"count"`
	Sum    float64           `json:"sum"`
	Min    float64           `json:"min"`
	Max    float64           `json:"max"`
	sketch *ddsketch.DDSketch
}

// New returns an empty partial.
func New(panel string, tags map[string]string, bucket time.Time) *Partial {
	s, _ := ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchBins)
	return &Partial{Panel: panel, Tags: tags, Bucket: bucket.UTC(), Min: math.Inf(1), Max: math.Inf(-1), sketch: s}
}

// Key tells partials that merge together: the same panel, tags and bucket.
func (p *Partial) Key() string {
	keys := make([]string, 0, len(p.Tags))
	for k := range p.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(p.Panel)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s=%s", k, p.Tags[k])
	}
	fmt.Fprintf(&b, "\x00%d", p.Bucket.UnixNano())
	return b.String()
}

// Add takes one reading.
func (p *Partial) Add(v float64) {
	p.Count++
	p.Sum += v
	p.Min = math.Min(p.Min, v)
	p.Max = math.Max(p.Max, v)
	p.sketch.Add(v)
}

// Merge adds another share's partial of the same key.
func (p *Partial) Merge(o *Partial) error {
	if o.Key() != p.Key() {
		return fmt.Errorf("partials of different panels, tags or buckets do not merge")
	}
	p.Count += o.Count
	p.Sum += o.Sum
	p.Min = math.Min(p.Min, o.Min)
	p.Max = math.Max(p.Max, o.Max)
	return p.sketch.MergeWith(o.sketch)
}

// Mean is the mean of the readings taken, NaN without any.
func (p *Partial) Mean() float64 {
	if p.Count == 0 {
		return math.NaN()
	}
	return p.Sum / p.Count
}

// Quantile is the q-quantile of the readings taken, within the sketch's
// relative accuracy (1%).
func (p *Partial) Quantile(q float64) (float64, error) { return p.sketch.GetValueAtQuantile(q) }

type wire struct {
	Panel  string            `json:"panel"`
	Tags   map[string]string `json:"tags,omitempty"`
	Bucket time.Time         `json:"bucket"`
	Count  float64           `json:"count"`
	Sum    float64           `json:"sum"`
	Min    *float64          `json:"min,omitempty"`
	Max    *float64          `json:"max,omitempty"`
	Sketch []byte            `json:"sketch"` // DDSketch's own encoding, base64 in JSON
}

// MarshalJSON is the partial as it is published.
func (p *Partial) MarshalJSON() ([]byte, error) {
	w := wire{Panel: p.Panel, Tags: p.Tags, Bucket: p.Bucket, Count: p.Count, Sum: p.Sum}
	if p.Count > 0 {
		w.Min, w.Max = &p.Min, &p.Max
	}
	p.sketch.Encode(&w.Sketch, false)
	return json.Marshal(w)
}

// UnmarshalJSON reads a published partial.
func (p *Partial) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Panel == "" || w.Count < 0 || (w.Count > 0 && (w.Min == nil || w.Max == nil)) {
		return errors.New("not a partial: panel, count, min and max are required")
	}
	s, err := ddsketch.DecodeDDSketch(w.Sketch, store.DenseStoreConstructor, nil)
	if err != nil {
		return fmt.Errorf("the partial's sketch: %w", err)
	}
	if s.GetCount() != w.Count {
		return fmt.Errorf("the partial's sketch holds %v readings, its count %v", s.GetCount(), w.Count)
	}
	*p = *New(w.Panel, w.Tags, w.Bucket)
	p.Count, p.Sum = w.Count, w.Sum
	if w.Count > 0 {
		p.Min, p.Max = *w.Min, *w.Max
	}
	return p.sketch.MergeWith(s)
}
