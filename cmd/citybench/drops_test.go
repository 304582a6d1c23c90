package main

import "testing"

// TestDropCount: a run's drops are told from earlier ones, or not at all.
func TestDropCount(t *testing.T) {
	report := func(d *dropCount, n int64) { d.total, d.known, d.reports = n, true, d.reports+1 }
	for _, c := range []struct {
		name string
		d    *dropCount
		run  func(d *dropCount)
		want int64
	}{
		{"statistics never came", &dropCount{known: true}, func(d *dropCount) {}, -1},
		{"a quiet run", &dropCount{known: true, stats: true}, func(d *dropCount) {}, 0},
		{"a run that dropped, the count known before", &dropCount{known: true, stats: true, total: 40}, func(d *dropCount) { report(d, 100); report(d, 140) }, 100},
		{"a run that dropped, the count unknown before", &dropCount{stats: true}, func(d *dropCount) { report(d, 140) }, -1},
	} {
		total, known, reports := c.d.mark()
		c.run(c.d)
		if got := c.d.since(total, known, reports); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
