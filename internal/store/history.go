package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// CaughtUp waits until everything the log held when it was called is in
// InfluxDB, or ctx ends, and tells which.
func (s *Store) CaughtUp(ctx context.Context) bool {
	target := s.wal.Stats().Committed
	r := s.wal.NewReader(s.readCheckpoint())
	peek, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := r.Next(peek)
	cancel()
	r.Close()
	if err != nil {
		return ctx.Err() == nil // nothing waits to be forwarded
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		end, ok := s.lastEnd, s.progressed
		s.mu.Unlock()
		if ok && !end.Less(target) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// History reads back the points of a measurement with timestamps in
// [start, stop), one series after another, at most limit in all, and hands
// each to fn. It tells whether it stopped at the limit.
func (s *Store) History(ctx context.Context, measurement string, start, stop time.Time, limit int, fn func(feed.Point)) (bool, error) {
	return s.history(ctx, measurement, "", "", start, stop, limit, fn)
}

// HistoryWhere is History of the points whose string field equals value
// (a case's events, by its ID). The field and the value must be printable
// text: they are written into the query.
func (s *Store) HistoryWhere(ctx context.Context, measurement, field, value string, start, stop time.Time, limit int, fn func(feed.Point)) (bool, error) {
	for _, x := range []string{field, value} {
		if !printable(x) {
			return false, fmt.Errorf("%q is not printable text", x)
		}
	}
	return s.history(ctx, measurement, field, value, start, stop, limit, fn)
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

func (s *Store) history(ctx context.Context, measurement, field, value string, start, stop time.Time, limit int, fn func(feed.Point)) (bool, error) {
	after := ""
	if field != "" {
		after = fmt.Sprintf("r[%q] == %q", field, value)
	}
	return s.pivot(ctx, measurement, nil, after, start, stop, limit, func(t time.Time, row map[string]any, isTag map[string]bool) {
		pt := feed.Point{Measurement: measurement, Time: t}
		for _, k := range slices.Sorted(maps.Keys(row)) {
			v := row[k]
			if s, ok := v.(string); ok && isTag[k] {
				pt.Tags = append(pt.Tags, feed.Tag{Key: k, Value: s})
			} else if lv, ok := lineprotocol.NewValue(v); ok {
				pt.Fields = append(pt.Fields, feed.Field{Key: k, Value: lv})
			}
		}
		fn(pt)
	})
}

// pivot reads back the points of a measurement with timestamps in
// [start, stop) whose tags equal where, pivoted into rows of fields, and
// of those the rows the Flux predicate after keeps (all when empty); it
// hands each row to fn, its columns without InfluxDB's own and without
// empty ones, with which of them are tags (after the pivot each table is
// one series, and its group key holds the tags, which tells them from
// string fields). At most limit; it tells whether it stopped there.
// where's keys and values must be printable text.
func (s *Store) pivot(ctx context.Context, measurement string, where map[string]string, after string, start, stop time.Time, limit int,
	fn func(t time.Time, row map[string]any, isTag map[string]bool)) (bool, error) {
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
	if after != "" {
		q += "\n  |> filter(fn: (r) => " + after + ")"
	}
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
		row := make(map[string]any, len(rec.Values()))
		for k, v := range rec.Values() {
			if !strings.HasPrefix(k, "_") && k != "result" && k != "table" && v != nil {
				row[k] = v
			}
		}
		fn(rec.Time(), row, isTag)
		n++
	}
	if err := res.Err(); err != nil {
		return false, fmt.Errorf("reading %s back from InfluxDB: %w", measurement, err)
	}
	return false, nil
}
