package feed

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSenMLNames runs the names of farshidtz/senml's TestValidateName
// (senml_test.go, commit 17fe819499337a129d0187dcbd486e0a05829ea3, MIT
// licence) through the decoder: the valid ones store, the invalid ones are
// refused for their name (RFC 8428 section 4.5.1).
func TestSenMLNames(t *testing.T) {
	valid := []string{"Aa-:./_", "urn:dev:ow:10e2073a", "http://example.com", "3a", "Az3-:./_"}
	invalid := []string{"-A", ":A", ".A", "/A", "_A", "~A", "!A", "@A", "#A", "$A", "%A",
		"^A", "&A", "*A", "(A", "+A", "=A", " A", " ", "A ", "-3a", "A;b"}
	decode := func(name string) error {
		f, err := New(Spec{ID: "lab", Topic: "lab", Format: FormatSenML, Measurement: "lab",
			Fields: map[string]FieldSpec{"x": {Path: name, Type: TypeFloat}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := json.Marshal(name)
		points, err := f.Decode("lab", []byte(`[{"n":`+string(n)+`,"v":1}]`), testReceived)
		if err == nil && len(points) != 1 {
			t.Fatalf("%q: %d points", name, len(points))
		}
		return err
	}
	for _, name := range valid {
		if err := decode(name); err != nil {
			t.Errorf("valid name %q refused: %v", name, err)
		}
	}
	for _, name := range invalid {
		err := decode(name)
		if err == nil || !strings.Contains(err.Error(), "section 4.5.1") {
			t.Errorf("invalid name %q: got %v, want a refusal for its name", name, err)
		}
	}
}
