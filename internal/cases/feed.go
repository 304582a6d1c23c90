package cases

import (
	"slices"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Fields a case feed's closing and reopening events gain for the panels:
// whether the case closed by its deadline, how long it was open, and
// whether the event reopened it. Ratio, mean and percentile panels over
// them give the on-time completion rate, the time to close and the
// reopen rate.
const (
	FieldOnTime   = "on_time"
	FieldCloseMin = "close_min"
	FieldReopened = "reopened"
)

// Derived are the derived fields' types, for panel validation.
var Derived = map[string]string{FieldOnTime: feed.TypeBool, FieldCloseMin: feed.TypeFloat, FieldReopened: feed.TypeBool}

// RulesOf are a case feed's rules.
func RulesOf(c *feed.CaseSpec) Rules {
	return Rules{
		Statuses: c.Statuses, Opening: c.Opening, Closed: c.Closed, KeepClosed: time.Duration(c.KeepClosed),
		Limit: func(tags []Tag) time.Duration {
			return c.Limit(func(key string) (string, bool) {
				for _, t := range tags {
					if t.Key == key {
						return t.Value, true
					}
				}
				return "", false
			})
		},
	}
}

// EventOf reads a case event from a case feed's reading: its case, status
// and due time from the fields the spec names, its attributes from the
// reading's tags, except an NGSI entity's id (the case's own identity,
// which would make each case a group of its own).
func EventOf(c *feed.CaseSpec, p *feed.Point) Event {
	e := Event{Case: p.Text(c.ID), Status: p.StringField(c.Status), Time: p.Time}
	if c.Due != "" {
		if due, err := time.Parse(time.RFC3339Nano, p.StringField(c.Due)); err == nil {
			e.Due = due
		}
	}
	if c.Opened != "" {
		if opened, err := time.Parse(time.RFC3339Nano, p.StringField(c.Opened)); err == nil {
			e.Opened = opened
		}
	}
	e.Tags = p.Tags
	if i := slices.IndexFunc(p.Tags, func(t Tag) bool { return t.Key == feed.TagEntityID }); i >= 0 {
		e.Tags = slices.Delete(slices.Clone(p.Tags), i, i+1)
	}
	return e
}
