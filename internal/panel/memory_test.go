package panel

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// BenchmarkMemoryPerSeries reports the heap each active series of a
// grouped panel takes (one reading per series; the buckets are fixed-size,
// so more readings do not add to it), for plain aggregates and for
// percentiles, whose buckets carry sketches.
func BenchmarkMemoryPerSeries(b *testing.B) {
	for _, agg := range []string{AggMean, AggP95} {
		b.Run(agg, func(b *testing.B) {
			const series = 100_000
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				clock := &fakeClock{t: start}
				e := New([]ScreenSpec{{ID: "s", Panels: []Spec{{ID: "p", Feed: "air", Field: "pm25", Agg: agg, Window: 5 * time.Minute,
					GroupBy: []string{"district"}, MaxGroups: series}}}}, &recordingSink{}, testLog(), nil, Options{Now: clock.Now})
				pts := make([]feed.Point, 0, 1000)
				for s := 0; s < series; s++ {
					pts = append(pts, point(start.Add(-time.Duration(s%300)*time.Second), fmt.Sprintf("station-%06d", s), float64(s%500)))
					if len(pts) == cap(pts) {
						e.Observe("air", pts)
						pts = pts[:0]
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/series, "B/series")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k-series")
				runtime.KeepAlive(e)
			}
		})
	}
}
