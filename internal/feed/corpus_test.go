package feed

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// corpusBytes is a byte string of the corpus: JSON text when it is UTF-8
// (other forms, base64 objects, are left out by the test).
type corpusBytes struct {
	s  string
	ok bool
}

func (b *corpusBytes) UnmarshalJSON(data []byte) error {
	b.ok = json.Unmarshal(data, &b.s) == nil
	return nil
}

type corpusEntry struct {
	Input struct {
		Text        corpusBytes `json:"text"`
		DefaultTime int64       `json:"defaultTime"`
		Precision   string      `json:"precision"`
	} `json:"input"`
	Output struct {
		Error  string `json:"error"`
		Result []struct {
			Time int64       `json:"time"`
			Name corpusBytes `json:"name"`
			Tags []struct {
				Key, Value corpusBytes
			} `json:"tags"`
			Fields []struct {
				Key   corpusBytes                `json:"key"`
				Value map[string]json.RawMessage `json:"value"`
			} `json:"fields"`
		} `json:"result"`
	} `json:"output"`
}

// TestLineProtocolCorpus runs InfluxData's line-protocol corpus
// (testdata/lpcorpus, with its source) through the line decoder of a feed
// that keeps every field: every line the reference decoder refuses is
// refused, and every one it reads gives the same points, but for what
// docs/feeds.md says cityscreen does differently because InfluxDB would
// refuse it: an unsigned integer is stored as a signed one (or refused
// beyond one), a tag or field named time is refused, and so is a time
// before 2000 or more than an hour after receipt (a wrong layout's sign).
func TestLineProtocolCorpus(t *testing.T) {
	corpus := readCorpus(t)
	feed, err := New(Spec{ID: "raw", Topic: "lp/#", Format: FormatLine}.WithDefaults(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checked, refused, skipped := 0, 0, 0
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range corpus.Decode {
			if !yield(k) {
				return
			}
		}
	}) {
		e := corpus.Decode[key]
		if !e.Input.Text.ok || e.Input.Precision != "1ns" {
			skipped++
			continue
		}
		points, err := feed.Decode("lp/x", []byte(e.Input.Text.s), time.Unix(0, e.Input.DefaultTime))
		if e.Output.Error != "" {
			if err == nil {
				t.Errorf("%s: %q: the reference refuses it (%s), cityscreen reads %v", key, Clip(e.Input.Text.s), e.Output.Error, points)
			}
			refused++
			continue
		}
		want, wantErr := corpusWant(e)
		switch {
		case wantErr != "":
			// A time out of range is checked last: any refusal will do.
			if err == nil || (wantErr != "check the time layout" && !strings.Contains(err.Error(), wantErr)) {
				t.Errorf("%s: %q: want refused (%s), got %v %v", key, Clip(e.Input.Text.s), wantErr, points, err)
			}
		case want == "":
			skipped++
			continue
		case err != nil:
			t.Errorf("%s: %q: the reference reads it, cityscreen refuses it: %v", key, Clip(e.Input.Text.s), err)
		default:
			if got := corpusGot(points); got != want {
				t.Errorf("%s: %q:\n got %s\nwant %s", key, Clip(e.Input.Text.s), got, want)
			}
		}
		checked++
	}
	t.Logf("%d corpus lines read alike, %d refused alike, %d left out (not UTF-8, or another precision)", checked, refused, skipped)
	if checked+refused < 4900 {
		t.Fatalf("only %d corpus entries compared", checked+refused)
	}
}

// corpusWant writes the reference's points as corpusGot writes
// cityscreen's, after cityscreen's documented conversions, or the error
// cityscreen must give; "" for an entry it cannot compare.
func corpusWant(e *corpusEntry) (string, string) {
	var sb strings.Builder
	for _, p := range e.Output.Result {
		if !p.Name.ok {
			return "", ""
		}
		fmt.Fprintf(&sb, "%s", p.Name.s)
		tags := map[string]string{}
		for _, tg := range p.Tags {
			if !tg.Key.ok || !tg.Value.ok {
				return "", ""
			}
			if tg.Key.s == "time" {
				return "", "a tag named time"
			}
			tags[tg.Key.s] = tg.Value.s
		}
		for _, k := range slices.Sorted(mapKeys(tags)) {
			fmt.Fprintf(&sb, ",%s=%s", k, tags[k])
		}
		var fields []string
		for _, fl := range p.Fields {
			if !fl.Key.ok {
				return "", ""
			}
			if fl.Key.s == "time" {
				return "", "a field named time"
			}
			for kind, raw := range fl.Value {
				v := string(raw)
				if kind == "uint" {
					var u uint64
					json.Unmarshal(raw, &u)
					if u > math.MaxInt64 {
						return "", "beyond a signed 64-bit integer"
					}
					kind = "int"
				}
				if kind == "string" {
					var s string
					if json.Unmarshal(raw, &s) != nil {
						return "", ""
					}
					v = fmt.Sprintf("%q", s)
				}
				if kind == "float" {
					var x float64
					json.Unmarshal(raw, &x)
					v = fmt.Sprint(x + 0) // -0 is 0
				}
				fields = append(fields, fmt.Sprintf(" %s:%s=%s", fl.Key.s, kind, v))
			}
		}
		slices.Sort(fields)
		sb.WriteString(strings.Join(fields, ""))
		// cityscreen refuses a time before 2000 or more than an hour after
		// receipt, a wrong time layout's sign (docs/feeds.md).
		if t := time.Unix(0, p.Time); t.Year() < 2000 || t.After(time.Unix(0, e.Input.DefaultTime).Add(time.Hour)) {
			return "", "check the time layout"
		}
		fmt.Fprintf(&sb, " %d;", p.Time)
	}
	return sb.String(), ""
}

// corpusGot writes points as corpusWant writes the reference's.
func corpusGot(points []Point) string {
	var sb strings.Builder
	for _, p := range points {
		sb.WriteString(p.Measurement)
		tags := map[string]string{}
		for _, tg := range p.Tags {
			tags[tg.Key] = tg.Value
		}
		for _, k := range slices.Sorted(mapKeys(tags)) {
			fmt.Fprintf(&sb, ",%s=%s", k, tags[k])
		}
		var fields []string
		for _, fl := range p.Fields {
			kind, v := "", ""
			switch fl.Value.Kind() {
			case lineprotocol.Int:
				kind, v = "int", fmt.Sprint(fl.Value.IntV())
			case lineprotocol.Uint:
				kind, v = "uint", fmt.Sprint(fl.Value.UintV())
			case lineprotocol.Float:
				kind, v = "float", fmt.Sprint(fl.Value.FloatV()+0) // -0 is 0
			case lineprotocol.Bool:
				kind, v = "bool", fmt.Sprint(fl.Value.BoolV())
			case lineprotocol.String:
				kind, v = "string", fmt.Sprintf("%q", fl.Value.StringV())
			}
			fields = append(fields, fmt.Sprintf(" %s:%s=%s", fl.Key, kind, v))
		}
		slices.Sort(fields)
		sb.WriteString(strings.Join(fields, ""))
		fmt.Fprintf(&sb, " %d;", p.Time.UnixNano())
	}
	return sb.String()
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// lpCorpus is the line-protocol corpus's decoding cases.
type lpCorpus struct {
	Decode map[string]*corpusEntry `json:"decode"`
}

func readCorpus(t testing.TB) *lpCorpus {
	t.Helper()
	f, err := os.Open("testdata/lpcorpus/corpus.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var c lpCorpus
	if err := json.NewDecoder(zr).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// corpusTexts are the corpus's decoding inputs that are text.
func corpusTexts(t testing.TB) []string {
	c := readCorpus(t)
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range c.Decode {
			if !yield(k) {
				return
			}
		}
	}) {
		if e := c.Decode[k]; e.Input.Text.ok {
			out = append(out, e.Input.Text.s)
		}
	}
	return out
}
