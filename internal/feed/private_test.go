package feed

import (
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
	in := `{"response_min":12.5,"caller":{"phone":"13812345678","name":"张三","id_card":"230102199001011234"}}`
	out := string(f.Scrub([]byte(in)))
	if out != `{"response_min":12.5,"caller":{"phone":"138****5678"}}` {
		t.Fatalf("scrubbed: %s", out)
	}
	points, err := f.Decode("h/daoli", []byte(out), time.Now())
	if err != nil || !strings.Contains(fmt.Sprint(points[0].Tags), "{caller_area 138****5678}") {
		t.Fatalf("decoded %+v %v", points, err)
	}
	if got := string(f.Scrub([]byte(`not json 13812345678`))); strings.Contains(got, "1381") {
		t.Fatalf("garbage kept: %s", got)
	}
	// Each record of an array.
	arr := `[{"response_min":1,"caller":{"phone":"13900000001"}},{"response_min":2,"caller":{"name":"李四"}}]`
	if got := string(f.Scrub([]byte(arr))); got != `[{"response_min":1,"caller":{"phone":"139****0001"}},{"response_min":2,"caller":{}}]` {
		t.Fatalf("records: %s", got)
	}
	// Unchanged without private paths.
	plain, _ := New(Spec{ID: "p", Topic: "p", Measurement: "m", Fields: map[string]FieldSpec{"v": {Type: TypeFloat}}}, Options{})
	if got := string(plain.Scrub([]byte(in))); got != in {
		t.Fatalf("a feed without private data changed the payload: %s", got)
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
