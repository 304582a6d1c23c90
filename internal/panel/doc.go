// Package panel aggregates readings live into the panels of screens.
//
// Each panel keeps, per series (one per group of tag values, or one for an
// ungrouped panel), a ring of fixed time buckets covering its sliding
// window: memory grows with the number of series, never with the number of
// readings. Buckets are 1/60 of the window, so the window slides in steps of
// that size (5 s for a 5 min window).
//
// An Engine is fed by Observe, from any number of goroutines, and publishes
// the views of changed panels to its Sink from Run, which sends them to
// each client at most once per coalescing interval, its clients taking
// turns (Turns), a leading edge aside. Views are re-evaluated every second too,
// so that values leave the window and panels turn stale or nodata while no
// readings arrive.
package panel
