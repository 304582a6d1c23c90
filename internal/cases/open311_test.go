package cases

import (
	"fmt"
	"os"
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
	data, err := os.ReadFile("testdata/open311.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec feed.Spec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec = spec.WithDefaults()
	if ps := spec.Validate(); len(ps) > 0 {
		t.Fatalf("the Open311 feed: %v", ps)
	}
	f, err := feed.New(spec, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
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
