package store

import (
	"context"
	"time"
)

// Rows reads back the points of a measurement whose tags equal where, with
// timestamps in [start, stop), at most limit, and hands each to fn with its
// tags and fields (numbers as float64 or int64, text as string). It tells
// whether it stopped at the limit. Tag keys and values must be printable
// text: they are written into the query.
func (s *Store) Rows(ctx context.Context, measurement string, where map[string]string, start, stop time.Time, limit int,
	fn func(t time.Time, tags map[string]string, fields map[string]any)) (bool, error) {
	return s.pivot(ctx, measurement, where, "", start, stop, limit, func(t time.Time, row map[string]any, isTag map[string]bool) {
		tags, fields := map[string]string{}, map[string]any{}
		for k, v := range row {
			if isTag[k] {
				tags[k], _ = v.(string)
			} else {
				fields[k] = v
			}
		}
		fn(t, tags, fields)
	})
}
