package feed

import (
	"testing"
	"time"
)

// TestParseISO8601: the date-times NGSI publishers send, read as FIWARE
// Orion and NGSI-LD read them: a missing zone is UTC.
func TestParseISO8601(t *testing.T) {
	utc := func(s string) time.Time { x, _ := time.Parse(time.RFC3339Nano, s); return x }
	for in, want := range map[string]time.Time{
		"2016-03-15T11:00:00Z":                    utc("2016-03-15T11:00:00Z"),
		"2016-03-15T11:00:00":                     utc("2016-03-15T11:00:00Z"),
		"2016-03-15T11:00:00.250":                 utc("2016-03-15T11:00:00.25Z"),
		"2016-03-15T12:00:00+0100":                utc("2016-03-15T11:00:00Z"),
		"2016-03-15T12:00:00+01":                  utc("2016-03-15T11:00:00Z"),
		"2016-03-15T12:00+01:00":                  utc("2016-03-15T11:00:00Z"),
		"2016-03-15":                              utc("2016-03-15T00:00:00Z"),
		"2016-03-15T11:00:00/2016-03-15T12:00:00": utc("2016-03-15T11:00:00Z"),
		"2016-03-15T11:00:00Z/PT1H":               utc("2016-03-15T11:00:00Z"),
	} {
		got, err := ParseISO8601(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseISO8601(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"PT1H/2016-03-15T12:00:00Z", "15/03/2016", "2010-04-15T06:37:38-08:00Z", "yesterday", ""} {
		if got, err := ParseISO8601(bad); err == nil {
			t.Errorf("ParseISO8601(%q) = %v, want an error", bad, got)
		}
	}
}
