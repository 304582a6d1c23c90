// Package citymap reads a city's boundary file (GeoJSON: a FeatureCollection
// of the districts' polygons) for screens that draw the city: which
// features it names, its extent, and whether a position falls on it.
//
// A Map is read-only once loaded and safe for concurrent use.
package citymap

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"
	"github.com/paulmach/orb/planar"
)

// MaxBytes is the largest boundary file read: a city's districts drawn
// finely enough for a 4K wall are a few megabytes.
const MaxBytes = 32 << 20

// Map is a loaded boundary file.
type Map struct {
	// Data is the file as read, served to the pages as it is.
	Data []byte
	// Sum is Data's SHA-256, for HTTP validators and to tell two loads of
	// one file apart from two files.
	Sum [sha256.Size]byte
	// Names of the features, sorted.
	Names []string
	// Extent is the bounding box of every feature.
	Extent orb.Bound

	shapes []shape
}

type shape struct {
	name string
	geom orb.Geometry
}

// Load reads a GeoJSON FeatureCollection whose features are polygons or
// multipolygons named by the property nameProp. A file that is not such a
// collection, a feature without a name, or two features of one name, is
// an error that says which.
func Load(path, nameProp string) (*Map, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("map file %s does not exist (the Harbin demo's is made by make assets)", path)
		}
		return nil, err
	}
	if fi.Size() > MaxBytes {
		return nil, fmt.Errorf("map file %s is %d bytes: at most %d", path, fi.Size(), MaxBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, nameProp)
}

// Parse is Load of a file's contents.
func Parse(data []byte, nameProp string) (*Map, error) {
	fc, err := geojson.UnmarshalFeatureCollection(data)
	if err != nil {
		return nil, fmt.Errorf("not a GeoJSON FeatureCollection: %w", err)
	}
	if len(fc.Features) == 0 {
		return nil, fmt.Errorf("the map has no features")
	}
	m := &Map{Data: data, Sum: sha256.Sum256(data)}
	seen := map[string]bool{}
	for i, f := range fc.Features {
		name, _ := f.Properties[nameProp].(string)
		if name == "" {
			return nil, fmt.Errorf("feature %d has no %q property to name it", i, nameProp)
		}
		if seen[name] {
			return nil, fmt.Errorf("feature %d: %q names two features", i, name)
		}
		seen[name] = true
		switch f.Geometry.(type) {
		case orb.Polygon, orb.MultiPolygon:
		default:
			return nil, fmt.Errorf("feature %q is a %s: want a Polygon or MultiPolygon", name, f.Geometry.GeoJSONType())
		}
		b := f.Geometry.Bound()
		if b.Min.Lon() < -180 || b.Max.Lon() > 180 || b.Min.Lat() < -90 || b.Max.Lat() > 90 {
			return nil, fmt.Errorf("feature %q reaches past longitude ±180 or latitude ±90: want longitude, latitude in degrees", name)
		}
		if i == 0 {
			m.Extent = b
		} else {
			m.Extent = m.Extent.Union(b)
		}
		m.Names = append(m.Names, name)
		m.shapes = append(m.shapes, shape{name, f.Geometry})
	}
	sort.Strings(m.Names)
	return m, nil
}

// Has reports whether a feature has the name.
func (m *Map) Has(name string) bool {
	i := sort.SearchStrings(m.Names, name)
	return i < len(m.Names) && m.Names[i] == name
}

// Locate names the feature a position (longitude, latitude in degrees)
// falls in, and false when it falls on none: in the sea, or in the next
// province.
func (m *Map) Locate(lon, lat float64) (string, bool) {
	p := orb.Point{lon, lat}
	if !m.Extent.Contains(p) {
		return "", false
	}
	for _, s := range m.shapes {
		switch g := s.geom.(type) {
		case orb.Polygon:
			if planar.PolygonContains(g, p) {
				return s.name, true
			}
		case orb.MultiPolygon:
			if planar.MultiPolygonContains(g, p) {
				return s.name, true
			}
		}
	}
	return "", false
}
