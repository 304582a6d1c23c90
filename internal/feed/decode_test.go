package feed

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/tidwall/gjson"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected from what the decoders produce")

var testReceived = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func loadCase(t testing.TB, dir string) (*Feed, string, []byte) {
	t.Helper()
	specYAML, err := os.ReadFile(filepath.Join(dir, "feed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec Spec
	dec := yaml.NewDecoder(bytes.NewReader(specYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		t.Fatalf("%s/feed.yaml: %v", dir, err)
	}
	f, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	topic, err := os.ReadFile(filepath.Join(dir, "topic"))
	if err != nil {
		t.Fatal(err)
	}
	input, err := os.ReadFile(filepath.Join(dir, "input"))
	if err != nil {
		t.Fatal(err)
	}
	return f, string(topic), input
}

// render writes points as line protocol, or the rejection reason.
func render(points []Point, err error) []byte {
	if err != nil {
		return []byte("rejected: " + err.Error() + "\n")
	}
	var enc lineprotocol.Encoder
	for i := range points {
		points[i].AppendLine(&enc)
	}
	return enc.Bytes()
}

// TestDecodeGolden runs every testdata/<case>: feed.yaml, topic and input
// must decode to expected (line protocol, or "rejected: reason").
func TestDecodeGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/feed.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata cases")
	}
	for _, file := range files {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, topic, input := loadCase(t, dir)
			got := render(f.Decode(topic, input, testReceived))
			path := filepath.Join(dir, "expected")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded\n%s\nwant\n%s", got, want)
			}
			// The line protocol handed on with the points is theirs.
			points, line, err := f.DecodeLine(topic, input, testReceived)
			if err != nil {
				return
			}
			var enc lineprotocol.Encoder
			for _, p := range points {
				p.AppendLine(&enc)
			}
			if !bytes.Equal(line, enc.Bytes()) {
				t.Errorf("line protocol\n%s\nwant\n%s", line, enc.Bytes())
			}
		})
	}
}

func TestPayloadLimit(t *testing.T) {
	f, topic, _ := loadCase(t, "testdata/json-basic")
	f.opts.MaxPayload = 16
	_, err := f.Decode(topic, bytes.Repeat([]byte(" "), 17), testReceived)
	if err == nil || err.Error() != "payload of 17 bytes is over the limit of 16 bytes" {
		t.Fatalf("err = %v", err)
	}
}

func TestHandleCountsAndKeepsRejections(t *testing.T) {
	f, topic, input := loadCase(t, "testdata/json-basic")
	f.opts.KeepRejected = 3
	f.opts.KeepPayload = 4
	if _, err := f.Handle(topic, input, testReceived); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := f.Handle(topic, []byte{'x', byte('0' + i), 'y', 'z', 'w'}, testReceived.Add(time.Duration(i)*time.Second)); err == nil {
			t.Fatal("garbage accepted")
		}
	}
	st := f.Stats()
	if st.Received != 6 || st.Accepted != 1 || st.Rejected != 5 {
		t.Fatalf("stats = %+v", st)
	}
	if st.LastSeen == nil || !st.LastSeen.Equal(testReceived.Add(4*time.Second)) {
		t.Fatalf("last seen = %v", st.LastSeen)
	}
	rs := f.Rejected()
	if len(rs) != 3 {
		t.Fatalf("kept %d rejections, want 3", len(rs))
	}
	for i, want := range []string{"x4yz", "x3yz", "x2yz"} {
		if rs[i].Payload != want || !rs[i].Truncated || rs[i].Size != 5 || rs[i].Reason != "payload is not valid JSON" {
			t.Errorf("rejection %d = %+v, want payload %q", i, rs[i], want)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+/c", "a/b/c/d", false},
		{"a/+", "a/", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"a/b", "a/b", true},
		{"a/b", "a", false},
		{"a", "a/b", false},
	} {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}

func TestValidate(t *testing.T) {
	min, max := 10.0, 1.0
	spec := Spec{
		ID:     "Bad_ID",
		Topic:  "a/{x}/{x}",
		Format: "xml",
		Time:   &TimeSpec{Layout: "unix_days"},
		Fields: map[string]FieldSpec{
			"v":   {Type: "float", Min: &min, Max: &max},
			"s":   {Type: "string", Min: &min},
			"1x":  {Type: "int"},
			"nt":  {},
			"odd": {Type: "decimal"},
		},
		Tags: map[string]TagSpec{"v": {}},
	}.WithDefaults()
	got := map[string]bool{}
	for _, p := range spec.Validate() {
		got[p.Key] = true
	}
	for _, key := range []string{"id", "topic", "format", "time.layout", "fields.v.min", "fields.s", "fields.1x", "fields.nt.type", "fields.odd.type", "tags.v"} {
		if !got[key] {
			t.Errorf("no problem reported for %s (got %v)", key, got)
		}
	}
}

func TestFilter(t *testing.T) {
	s := Spec{Topic: "harbin/env/air/{district}/{station}"}
	if got := s.Filter(); got != "harbin/env/air/+/+" {
		t.Fatalf("Filter = %q", got)
	}
}

func benchmarkDecode(b *testing.B, dir string) {
	f, topic, input := loadCase(b, dir)
	b.ReportAllocs()
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		if _, err := f.Decode(topic, input, testReceived); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) { benchmarkDecode(b, "testdata/json-basic") }
func BenchmarkDecodeLine(b *testing.B) { benchmarkDecode(b, "testdata/line-basic") }

func BenchmarkDecodeNumber(b *testing.B) { benchmarkDecode(b, "testdata/number-basic") }
func BenchmarkDecodeSenML(b *testing.B)  { benchmarkDecode(b, "testdata/senml-multiple-rfc8428-5.1.2") }

// BenchmarkDecodeNGSI decodes a normalized NGSI v2 AirQualityObserved
// entity (759 bytes, the FIWARE data model's example).
func BenchmarkDecodeNGSI(b *testing.B) { benchmarkDecode(b, "testdata/ngsi-sdm-airquality-normalized") }

// BenchmarkDecodeJSONCity decodes the larger air-quality reading that
// citybench's city stream publishes (six fields, 154 bytes).
func BenchmarkDecodeJSONCity(b *testing.B) { benchmarkDecode(b, "testdata/json-city-air") }

func TestHealth(t *testing.T) {
	var spec Spec
	dec := yaml.NewDecoder(strings.NewReader("id: s\ntopic: a/{x}\nmeasurement: m\ninterval: 30s\nfields: {v: {type: float}}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		t.Fatal(err)
	}
	f, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := f.started
	if st := f.StatsAt(start.Add(29 * time.Second)); st.Silent {
		t.Fatal("silent before its interval has passed since start")
	}
	if st := f.StatsAt(start.Add(31 * time.Second)); !st.Silent {
		t.Fatal("never heard from for longer than its interval, but not silent")
	}
	base := start.Truncate(time.Second).Add(time.Minute)
	for i := 0; i < 120; i++ { // two messages a second for a minute
		f.Handle("a/b", []byte(`{"v":1}`), base.Add(time.Duration(i)*500*time.Millisecond))
	}
	st := f.StatsAt(base.Add(60 * time.Second))
	if st.Silent || st.RatePerSecond != 2 {
		t.Fatalf("after a minute of 2/s: %+v", st)
	}
	if st := f.StatsAt(base.Add(95 * time.Second)); !st.Silent || st.RatePerSecond >= 2 {
		t.Fatalf("35 s after the last message: %+v", st)
	}
}

// The one-walk lookup of plain keys finds what gjson's Get finds, for
// every JSON case here and for repeated, escaped and nested keys.
func TestPlainKeysAgreeWithGet(t *testing.T) {
	extra := [][]byte{
		[]byte(`{"pm25": 1, "pm25": 2, "aqi": 3, "ts": 1700000000000}`),
		[]byte(`{"pm\u0032\u0035": 7, "aqi": 3, "ts": 1700000000000, "station": "x"}`),
		[]byte(`{"meta": {"pm25": 9}, "pm25": 4, "aqi": 1, "ts": 1700000000000}`),
		[]byte(`{"aqi": null, "pm25": "5", "ts": 1700000000000}`),
		[]byte(`{"ts":1795600000000,"pm25":1,"aqi":2,"meta":"x","meta":{"source":"second"},"status":{"ok":true},"status":{"ok":false}}`),
		[]byte(`{"ts":1795600000000,"pm25":1,"aqi":2,"meta":{"other":1},"meta":{"source":"second"}}`),
		[]byte(`{"ts":1795600000000,"pm25":1,"aqi":2,"meta":[{"source":"in an array"}],"status":{"ok":{"deep":true}}}`),
		[]byte(`{"ts":1795600000000,"pm25":1,"aqi":2,"meta":{"source":{"nested":1}},"status":{"ok":1}}`),
	}
	files, _ := filepath.Glob("testdata/json-*/feed.yaml")
	checked := 0
	defer func() {
		if checked < 10 {
			t.Errorf("only %d cases have plain paths", checked)
		}
	}()
	for _, file := range files {
		f, topic, input := loadCase(t, filepath.Dir(file))
		if f.keys == nil {
			continue
		}
		checked++
		for _, in := range append([][]byte{input}, extra...) {
			fast := render(f.Decode(topic, in, testReceived))
			keys := f.keys
			f.keys = nil
			slow := render(f.Decode(topic, in, testReceived))
			f.keys = keys
			if !bytes.Equal(fast, slow) {
				t.Errorf("%s, %s:\none walk\n%s\nGet\n%s", file, in, fast, slow)
			}
		}
	}
}

// TestKeysCheckedOnce: a feed whose measurement and names can be written
// as line protocol has them checked once, at New, and its tag values at
// every reading (the golden cases json-tag-*); one whose measurement
// cannot has every reading refused as before.
func TestKeysCheckedOnce(t *testing.T) {
	spec := Spec{ID: "air", Topic: "harbin/air/{district}", Measurement: "air_quality",
		Fields: map[string]FieldSpec{"pm25": {Type: "float"}}, Tags: map[string]TagSpec{"source": {Path: "meta.source"}}}
	good, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !good.fixedKeys {
		t.Fatal("a feed of plain names is not found encodable")
	}
	spec.Measurement = "air\x01quality"
	bad, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bad.fixedKeys {
		t.Fatal("a measurement with a control character is found encodable")
	}
	_, err = bad.Decode("harbin/air/daoli", []byte(`{"pm25": 1}`), time.Now())
	if err == nil || !strings.Contains(err.Error(), "invalid measurement") {
		t.Fatalf("Decode = %v, want the measurement refused", err)
	}
	_, err = good.Decode("harbin/air/dao\x7fli", []byte(`{"pm25": 1}`), time.Now())
	if err == nil || !strings.Contains(err.Error(), "invalid tag value district=") {
		t.Fatalf("Decode = %v, want the topic's tag value refused", err)
	}
}

// An integer field is taken from gjson's float where that is exact, and
// from the text beyond: each literal here gives the integer it says, or an
// error.
func TestJSONIntegers(t *testing.T) {
	for raw, want := range map[string]any{
		"0": int64(0), "-0": int64(0), "12": int64(12), "12.0": int64(12), "1e3": int64(1000),
		"1.00000000000000001":  int64(1), // a float rounds it to 1, as before
		"9007199254740991":     int64(9007199254740991),
		"9007199254740992":     int64(9007199254740992),
		"9007199254740993":     int64(9007199254740993),
		"-9007199254740993":    int64(-9007199254740993),
		"9223372036854775807":  int64(9223372036854775807),
		"-9223372036854775808": int64(-9223372036854775808),
		"9223372036854775808":  "not a 64-bit integer",
		"12.5":                 "not a 64-bit integer",
	} {
		r := gjson.Parse(raw)
		v, err := jsonValue(&r, &FieldSpec{Type: TypeInt})
		switch want := want.(type) {
		case int64:
			if err != nil || v.Kind() != lineprotocol.Int || v.IntV() != want {
				t.Errorf("%s: %v, %v; want %d", raw, v, err, want)
			}
		case string:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, %v; want an error %q", raw, v, err, want)
			}
		}
	}
}
