package feed

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCaseSpecValidation(t *testing.T) {
	spec := Spec{ID: "req", Topic: "h/{district}", Measurement: "m",
		Fields: map[string]FieldSpec{"case": {Type: TypeString}, "status": {Type: TypeString, Optional: true}, "n": {Type: TypeInt}},
		Cases: &CaseSpec{ID: "case", Status: "status", Due: "n", Statuses: []string{"received", "closed"},
			Opening: []string{"closed", "new"}, Closed: []string{"closed", "done"},
			Limits: []CaseLimit{{When: map[string]string{"category": "heating"}, Within: Duration(time.Hour)}, {Within: 0}}}}
	var got []string
	for _, p := range spec.WithDefaults().Validate() {
		got = append(got, p.Key+": "+p.Msg)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`cases.status: field "status" must not be optional`,
		`cases.due: field "n" must be a string`,
		`cases.closed: "done" is not among the statuses`,
		`cases.opening: "new" is not among the statuses`,
		`cases.opening: "closed" closes a case`,
		`cases.limits.0.when.category: the feed has no tag "category"`,
		`cases.limits.1.within: is required`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem %q in\n%s", want, all)
		}
	}
	line := Spec{ID: "l", Topic: "l", Format: FormatLine, Cases: &CaseSpec{ID: "a", Status: "b", Closed: []string{"c"}}}
	if ps := line.WithDefaults().Validate(); !strings.Contains(fmt.Sprint(ps), "case feeds take formats json and ngsi") {
		t.Errorf("a line-protocol case feed: %v", ps)
	}
}
