package cases

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// TestOpen311 reads GeoReport v2 service requests (the shape of the
// specification's GET /requests.json answer: a numeric service_request_id,
// times with a -08:00 offset, a null agency) through the case feed of
// testdata/open311.yaml, configuration only. A request first seen closed
// is counted closed from its requested_datetime, late against its
// expected_datetime; an open one is open, overdue once expected passes.
func TestOpen311(t *testing.T) {
	spec, f := loadFeed(t, "testdata/open311.yaml")
	pst := time.FixedZone("", -8*3600)
	now := time.Now().In(pst).Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	payload := fmt.Sprintf(`[
  {"service_request_id":638344,"status":"closed","status_notes":"Duplicate request.","service_name":"Sidewalk and Curb Issues",
   "service_code":"006","description":null,"agency_responsible":null,"service_notice":null,
   "requested_datetime":%q,"updated_datetime":%q,"expected_datetime":%q,
   "address":"8TH AVE and JUDAH ST","address_id":545483,"zipcode":94122,"lat":37.762221815,"long":-122.4651145},
  {"service_request_id":638349,"status":"open","status_notes":null,"service_name":"Sidewalk and Curb Issues",
   "service_code":"006","description":null,"agency_responsible":"Street Maintenance","service_notice":null,
   "requested_datetime":%q,"updated_datetime":%q,"expected_datetime":%q,
   "address":"8TH AVE and JUDAH ST","address_id":545483,"zipcode":94122,"lat":37.762221815,"long":-122.4651145}
]`, ts(-50*time.Minute), ts(-10*time.Minute), ts(-30*time.Minute), ts(-20*time.Minute), ts(-20*time.Minute), ts(5*time.Minute))
	points, err := f.Decode("city/open311/requests", []byte(payload), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b := New(RulesOf(spec.Cases), nil, now)
	var closed Result
	for i := range points {
		r, err := b.Apply(EventOf(spec.Cases, &points[i]))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r.Outcome == Closed {
			closed = r
		}
	}
	if closed.OnTime || closed.Took != 40*time.Minute {
		t.Errorf("638344, closed 20 minutes after it was expected: %+v", closed)
	}
	c, ok := b.Case("638349")
	if !ok || !c.Open() || c.Due != now.Add(5*time.Minute).UnixNano() || fmt.Sprint(c.Tags()) != "[{agency Street Maintenance} {service_code 006}]" {
		t.Fatalf("638349: %+v %v", c, ok)
	}
	b.Tick(now.Add(6 * time.Minute))
	overdue := 0
	b.Groups(func(g *Group) { overdue += g.Overdue })
	if overdue != 1 {
		t.Errorf("overdue once expected_datetime passed: %d", overdue)
	}
}

// TestSmartDataModelsServiceRequest reads the Smart Data Models' own
// Open311_ServiceRequest examples (testdata/sdm/SOURCE) through the NGSI
// case feed of testdata/sdm/feed.yaml, configuration only. The NGSI v2
// normalized entity is a request first seen closed, a day before it was
// expected: closed on time, from its requested_datetime. The NGSI-LD
// example as published carries an expected_datetime that is not a date
// ("-08:00Z"): refused with that reason; corrected, it is the same case.
func TestSmartDataModelsServiceRequest(t *testing.T) {
	spec, f := loadFeed(t, "testdata/sdm/feed.yaml")
	read := func(name string, fix func([]byte) []byte) (*Book, Result, error) {
		t.Helper()
		in, err := os.ReadFile("testdata/sdm/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if fix != nil {
			in = fix(in)
		}
		points, err := f.Decode(spec.Topic, in, time.Now())
		if err != nil {
			return nil, Result{}, err
		}
		if len(points) != 1 {
			t.Fatalf("%s: %d readings", name, len(points))
		}
		b := New(RulesOf(spec.Cases), nil, time.Now())
		r, err := b.Apply(EventOf(spec.Cases, &points[0]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b, r, nil
	}
	b, r, err := read("example-normalized.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	pst := time.FixedZone("", -8*3600)
	c, ok := b.Case("638344")
	if r.Outcome != Closed || !r.OnTime || r.Took != 0 || !ok ||
		c.Due != time.Date(2010, 4, 15, 6, 37, 38, 0, pst).UnixNano() ||
		fmt.Sprint(c.Tags()) != "[{agency Ayuntamiento de Ciudad} {entity_type Open311ServiceRequest} {service_code 234}]" {
		t.Fatalf("the NGSI v2 example: %+v, case %+v %v", r, c, ok)
	}

	if _, _, err := read("example-normalized.jsonld", nil); err == nil || !strings.Contains(err.Error(), `due time "2010-04-15T06:37:38-08:00Z" is not RFC 3339`) {
		t.Fatalf("the NGSI-LD example as published: %v", err)
	}
	ld, rl, err := read("example-normalized.jsonld", func(b []byte) []byte {
		return bytes.Replace(b, []byte("-08:00Z"), []byte("-08:00"), 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := ld.Case("638344")
	if rl != r || cl.Due != c.Due || cl.Opened != c.Opened || cl.ClosedAt != c.ClosedAt || fmt.Sprint(cl.Tags()) != fmt.Sprint(c.Tags()) {
		t.Fatalf("the NGSI-LD example, corrected: %+v %+v; the v2 one: %+v %+v", rl, cl, r, c)
	}
}

// loadFeed reads, checks and compiles a feed definition.
func loadFeed(t *testing.T, path string) (feed.Spec, *feed.Feed) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec feed.Spec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec = spec.WithDefaults()
	if ps := spec.Validate(); len(ps) > 0 {
		t.Fatalf("%s: %v", path, ps)
	}
	f, err := feed.New(spec, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return spec, f
}
