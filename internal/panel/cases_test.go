package panel

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

func TestCasePanelValidation(t *testing.T) {
	cs := &feed.CaseSpec{ID: "case", Status: "status", Closed: []string{"closed"}}
	feeds := map[string]feed.Spec{
		"req": {ID: "req", Topic: "h/{district}", Format: feed.FormatJSON, Cases: cs,
			Fields: map[string]feed.FieldSpec{"case": {Type: feed.TypeString}, "status": {Type: feed.TypeString}},
			Tags:   map[string]feed.TagSpec{"department": {}}},
		"air": {ID: "air", Topic: "a/{district}", Format: feed.FormatJSON, Fields: map[string]feed.FieldSpec{"pm25": {Type: feed.TypeFloat}}},
	}
	s := ScreenSpec{ID: "s", Panels: []Spec{
		{ID: "ok1", Feed: "req", Agg: AggOpen, GroupBy: []string{"district", "status", "department"}},
		{ID: "ok2", Feed: "req", Agg: AggDueSoon, Within: 2 * time.Hour},
		{ID: "ok3", Feed: "req", Agg: AggRatio, Filter: map[string]string{"status": "closed"}, Where: map[string]string{"on_time": "true"}},
		{ID: "ok4", Feed: "req", Agg: AggP50, Field: "close_min"},
		{ID: "a", Feed: "air", Agg: AggOverdue},
		{ID: "b", Feed: "req", Agg: AggDueSoon},
		{ID: "c", Feed: "req", Agg: AggOpen, Within: time.Hour},
		{ID: "d", Feed: "req", Agg: AggOpen, Field: "case"},
		{ID: "e", Feed: "req", Agg: AggOpen, GroupBy: []string{"channel"}},
		{ID: "f", Feed: "air", Agg: AggMean, Field: "close_min"},
		{ID: "g", Feed: "air", Agg: AggMean, Field: "pm25", Within: time.Hour},
	}}.WithDefaults()
	var got []string
	for _, p := range s.Validate(feeds) {
		got = append(got, p.Key)
	}
	want := []string{"panels.10.within", "panels.4.agg", "panels.5.within", "panels.6.within", "panels.7.field", "panels.8.group_by.0", "panels.9.field"}
	slices.Sort(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v", got, want)
	}
}
