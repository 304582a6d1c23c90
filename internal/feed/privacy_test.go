package feed

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		`"13812345678"`:        "138****5678",
		`13812345678`:          "138****5678",
		`"230102199001011234"`: "230***********1234",
		`"张三"`:                 "张*",
		`"欧阳娜娜"`:               "欧**娜",
		`"x"`:                  "*",
		`{"a":1}`:              "***",
	} {
		if got := Mask(gjson.Parse(in)); got != want {
			t.Errorf("Mask(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	spec := Spec{ID: "hotline", Topic: "h/{district}", Measurement: "req",
		Fields:  map[string]FieldSpec{"response_min": {Type: TypeFloat}},
		Tags:    map[string]TagSpec{"caller_area": {Path: "caller.phone"}},
		Private: []PrivateSpec{{Path: "caller.phone"}, {Path: "caller.name", Action: PrivateDrop}, {Path: "caller.id_card", Action: PrivateDrop}}}
	f, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPrivacy(nil, []Spec{spec})
	in := `{"response_min":12.5,"caller":{"phone":"13812345678","name":"张三","id_card":"230102199001011234"}}`
	out := string(p.Scrub("h/daoli", []byte(in)))
	if out != `{"response_min":12.5,"caller":{"phone":"138****5678"}}` {
		t.Fatalf("scrubbed: %s", out)
	}
	points, err := f.Decode("h/daoli", []byte(out), time.Now())
	if err != nil || !strings.Contains(fmt.Sprint(points[0].Tags), "{caller_area 138****5678}") {
		t.Fatalf("decoded %+v %v", points, err)
	}
	if got := string(p.Scrub("h/daoli", []byte(`not json 13812345678`))); strings.Contains(got, "1381") {
		t.Fatalf("garbage kept: %s", got)
	}
	// Each record of an array.
	arr := `[{"response_min":1,"caller":{"phone":"13900000001"}},{"response_min":2,"caller":{"name":"李四"}}]`
	if got := string(p.Scrub("h/daoli", []byte(arr))); got != `[{"response_min":1,"caller":{"phone":"139****0001"}},{"response_min":2,"caller":{}}]` {
		t.Fatalf("records: %s", got)
	}
	// Another topic, or no rules at all: unchanged.
	if got := string(p.Scrub("other/daoli", []byte(in))); got != in {
		t.Fatalf("a topic without rules changed: %s", got)
	}
	if got := string(NewPrivacy(nil, nil).Scrub("h/daoli", []byte(in))); got != in {
		t.Fatalf("no rules changed the payload: %s", got)
	}
}

// TestScrubEveryCopy: a rule holds for every place its path appears in a
// payload, whatever shape the publisher (or an attacker) gives it.
func TestScrubEveryCopy(t *testing.T) {
	p := NewPrivacy([]PrivacyRule{{Topic: "city/hotline/#", Paths: []PrivateSpec{
		{Path: "caller.phone"}, {Path: "caller.name", Action: PrivateDrop}, {Path: "id_card", Action: PrivateDrop},
	}}}, nil)
	secrets := []string{"13812345678", "13987654321", "张三丰", "230102199001011234"}
	for _, in := range []string{
		// a repeated key: gjson reads the last, sjson sets the first
		`{"caller":{"phone":"13812345678"},"caller":{"phone":"13987654321","name":"张三丰"}}`,
		`{"caller":{"phone":"13812345678","phone":"13987654321"}}`,
		// the caller as an array, of values or of objects
		`{"caller":[{"phone":"13812345678"},{"phone":"13987654321","name":"张三丰"}]}`,
		`{"caller":{"phone":["13812345678","13987654321"]}}`,
		`{"caller":{"phone":{"home":"13812345678","work":["13987654321"]}}}`,
		// deeper, in records, in an envelope
		`{"data":{"records":[{"caller":{"phone":"13812345678","name":"张三丰"}}]}}`,
		// escaped and differently cased keys
		`{"c\u0061ller":{"ph\u006fne":"13812345678"},"Caller":{"PHONE":"13987654321"}}`,
		// NGSI normalized: the attribute's value is masked, its type kept
		`{"caller":{"type":"StructuredValue","value":{"phone":"13812345678","name":"张三丰"}}}`,
		`{"id_card":{"type":"Text","value":"230102199001011234"}}`,
		// numbers
		`{"caller":{"phone":13812345678},"x":{"id_card":230102199001011234}}`,
	} {
		out := string(p.Scrub("city/hotline/daoli", []byte(in)))
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s\n  scrubbed to %s\n  still holds %s", in, out, s)
			}
		}
		if !json.Valid([]byte(out)) {
			t.Errorf("%s scrubbed to invalid JSON %s", in, out)
		}
	}
	if got := string(p.Scrub("city/hotline/daoli", []byte(`{"caller":{"type":"StructuredValue","value":{"phone":"13812345678"}}}`))); got != `{"caller":{"type":"StructuredValue","value":{"phone":"138****5678"}}}` {
		t.Errorf("NGSI: %s", got)
	}
	if got := string(p.Scrub("city/hotline/daoli", []byte(`{"caller":{"phone":["13812345678","13987654321"]},"n":1}`))); got != `{"caller":{"phone":["138****5678","139****4321"]},"n":1}` {
		t.Errorf("array: %s", got)
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if got := string(p.Scrub("city/hotline/daoli", []byte(deep))); got != withheld {
		t.Errorf("a payload nested 100 deep: %s", got)
	}
}

// TestPrivacyCheck: on a topic a rule covers, no feed reads a protected
// path as a field, nor a dropped one as a tag; on other topics it may.
func TestPrivacyCheck(t *testing.T) {
	p := NewPrivacy([]PrivacyRule{{Topic: "city/hotline/+/requests", Paths: []PrivateSpec{
		{Path: "caller.phone"}, {Path: "caller.name", Action: PrivateDrop},
	}}}, nil)
	spec := func(topic string) Spec {
		return Spec{ID: "spy", Topic: topic, Measurement: "m",
			Fields: map[string]FieldSpec{"p": {Path: "caller.phone", Type: TypeString}, "ok": {Path: "minutes", Type: TypeFloat}},
			Tags:   map[string]TagSpec{"n": {Path: "caller.name"}, "masked": {Path: "caller.phone"}, "c": {Path: "caller"}}}.WithDefaults()
	}
	for _, topic := range []string{"#", "city/#", "city/+/+/requests", "city/hotline/{district}/requests", "+/hotline/daoli/#"} {
		var keys []string
		for _, pr := range p.Check(spec(topic)) {
			keys = append(keys, pr.Key)
		}
		if got := strings.Join(keys, " "); got != "fields.p.path tags.n.path" {
			t.Errorf("topic %s: problems %q", topic, got)
		}
	}
	for _, topic := range []string{"city/air/#", "city/hotline/daoli/answers", "other"} {
		if ps := p.Check(spec(topic)); len(ps) > 0 {
			t.Errorf("topic %s: %v", topic, ps)
		}
	}
}

func TestFiltersOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"#", "a/b/c", true}, {"a/+", "a/b", true},
		{"a/+", "a/b/c", false}, {"a/#", "a", true}, {"a/+/c", "a/b/#", true}, {"+/+", "a/b/c", false},
		{"a/b/#", "a/+/c/d", true}, {"#", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true},
	} {
		if got := FiltersOverlap(c.a, c.b); got != c.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v", c.a, c.b, got)
		}
		if got := FiltersOverlap(c.b, c.a); got != c.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v", c.b, c.a, got)
		}
	}
}

func TestPrivateValidation(t *testing.T) {
	spec := Spec{ID: "x", Topic: "x", Format: FormatJSON, Measurement: "m",
		Fields:  map[string]FieldSpec{"phone": {Type: TypeFloat}},
		Tags:    map[string]TagSpec{"n": {Path: "name"}},
		Private: []PrivateSpec{{Path: "phone"}, {Path: "name", Action: PrivateDrop}, {Path: "a.#.b"}, {Path: "c", Action: "hide"}}}
	var keys []string
	for _, p := range spec.WithDefaults().Validate() {
		keys = append(keys, p.Key)
	}
	got := strings.Join(keys, " ")
	for _, want := range []string{"private.2.path", "private.3.action", "fields.phone.path", "tags.n.path"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %s", got, want)
		}
	}
}

// BenchmarkScrub: the demo hotline's payload on a protected topic, and a
// reading on a topic no rule covers (what every other message pays).
func BenchmarkScrub(b *testing.B) {
	p := NewPrivacy([]PrivacyRule{{Topic: "harbin/citizen/#", Paths: []PrivateSpec{
		{Path: "caller.phone"}, {Path: "caller.name", Action: PrivateDrop}, {Path: "caller.id_card", Action: PrivateDrop},
	}}}, nil)
	hotline := []byte(`{"answered_at":"2026-12-04T10:00:00Z","response_min":12.5,"resolved":true,"satisfaction":4,"category":"heating","caller":{"phone":"13812345678","name":"张三丰","id_card":"230102199001011234"}}`)
	air := []byte(`{"ts":1764842400000,"pm25":35.2,"pm10":60.1,"lon":126.6,"lat":45.7}`)
	b.Run("protected", func(b *testing.B) {
		for b.Loop() {
			p.Scrub("harbin/citizen/hotline/daoli", hotline)
		}
	})
	b.Run("unprotected", func(b *testing.B) {
		for b.Loop() {
			p.Scrub("harbin/air/daoli/s1", air)
		}
	})
}
