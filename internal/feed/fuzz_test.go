package feed

import (
	"path/filepath"
	"strings"
	"testing"
)

// fuzzDecoder feeds arbitrary payloads to the decoder of every golden case
// of a format: it must never panic, and what it accepts must be storable.
func fuzzDecoder(f *testing.F, prefix string) {
	dirs, _ := filepath.Glob("testdata/" + prefix + "*")
	var feeds []*Feed
	var topics []string
	for _, dir := range dirs {
		fd, topic, input := loadCase(f, dir)
		feeds, topics = append(feeds, fd), append(topics, topic)
		f.Add(input)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for i, fd := range feeds {
			points, err := fd.Decode(topics[i], payload, testReceived)
			if fd.keys != nil {
				// The one-walk lookup must agree with gjson's Get.
				keys := fd.keys
				fd.keys = nil
				slow := render(fd.Decode(topics[i], payload, testReceived))
				fd.keys = keys
				if fast := render(points, err); string(fast) != string(slow) {
					t.Fatalf("one walk:\n%s\nGet:\n%s", fast, slow)
				}
			}
			if err != nil {
				if points != nil || strings.TrimSpace(err.Error()) == "" {
					t.Fatalf("rejection with points or without a reason: %v", err)
				}
				continue
			}
			for _, p := range points {
				if p.Measurement == "" || len(p.Fields) == 0 {
					t.Fatalf("unstorable point %+v", p)
				}
			}
			if out := render(points, nil); len(out) == 0 {
				t.Fatal("accepted points encode to nothing")
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) { fuzzDecoder(f, "json-") }
func FuzzDecodeLine(f *testing.F) {
	// InfluxData's line-protocol corpus seeds it too (testdata/lpcorpus).
	for _, text := range corpusTexts(f) {
		f.Add([]byte(text))
	}
	fuzzDecoder(f, "line-")
}
func FuzzDecodeNumber(f *testing.F) { fuzzDecoder(f, "number-") }
func FuzzDecodeSenML(f *testing.F)  { fuzzDecoder(f, "senml-") }

func FuzzDecodeNGSI(f *testing.F) { fuzzDecoder(f, "ngsi-") }
