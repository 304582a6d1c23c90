package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Rows reads back the points of a measurement whose tags equal where, with
// timestamps in [start, stop), at most limit, and hands each to fn with its
// tags and fields (numbers as float64 or int64, text as string). It tells
// whether it stopped at the limit. Tag keys and values must be printable
// text: they are written into the query.
func (s *Store) Rows(ctx context.Context, measurement string, where map[string]string, start, stop time.Time, limit int,
	fn func(t time.Time, tags map[string]string, fields map[string]any)) (bool, error) {
	conds := []string{fmt.Sprintf("r._measurement == %q", measurement)}
	for _, k := range slices.Sorted(maps.Keys(where)) {
		if !printable(k) || !printable(where[k]) {
			return false, fmt.Errorf("%q=%q is not printable text", k, where[k])
		}
		conds = append(conds, fmt.Sprintf("r[%q] == %q", k, where[k]))
	}
	q := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		s.opts.Bucket, start.UTC().Format(time.RFC3339Nano), stop.UTC().Format(time.RFC3339Nano), strings.Join(conds, " and "))
	res, err := s.client.QueryAPI(s.opts.Org).Query(ctx, q)
	if err != nil {
		return false, fmt.Errorf("reading %s back from InfluxDB: %w", measurement, err)
	}
	defer res.Close()
	n := 0
	isTag := map[string]bool{}
	for res.Next() {
		if res.TableChanged() {
			clear(isTag)
			for _, c := range res.TableMetadata().Columns() {
				if c.IsGroup() && !strings.HasPrefix(c.Name(), "_") {
					isTag[c.Name()] = true
				}
			}
		}
		if n >= limit {
			return true, nil
		}
		rec := res.Record()
		tags, fields := map[string]string{}, map[string]any{}
		for k, v := range rec.Values() {
			switch {
			case strings.HasPrefix(k, "_") || k == "result" || k == "table" || v == nil:
			case isTag[k]:
				tags[k], _ = v.(string)
			default:
				fields[k] = v
			}
		}
		fn(rec.Time(), tags, fields)
		n++
	}
	if err := res.Err(); err != nil {
		return false, fmt.Errorf("reading %s back from InfluxDB: %w", measurement, err)
	}
	return false, nil
}
