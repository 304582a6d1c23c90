package store

import (
	"context"
	"fmt"
	"sort"
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
	// After the pivot each table is one series: its group key holds the
	// tags, which tells them from string fields.
	q := fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		s.opts.Bucket, start.UTC().Format(time.RFC3339Nano), stop.UTC().Format(time.RFC3339Nano), measurement)
	if field != "" {
		q += fmt.Sprintf("\n  |> filter(fn: (r) => r[%q] == %q)", field, value)
	}
	res, err := s.client.QueryAPI(s.opts.Org).Query(ctx, q)
	if err != nil {
		return false, fmt.Errorf("reading %s back from InfluxDB: %w", measurement, err)
	}
	defer res.Close()
	n := 0
	tags := map[string]bool{}
	for res.Next() {
		if res.TableChanged() {
			clear(tags)
			for _, c := range res.TableMetadata().Columns() {
				if c.IsGroup() && !strings.HasPrefix(c.Name(), "_") {
					tags[c.Name()] = true
				}
			}
		}
		if n >= limit {
			return true, nil
		}
		rec := res.Record()
		pt := feed.Point{Measurement: measurement, Time: rec.Time()}
		keys := make([]string, 0, len(rec.Values()))
		for k := range rec.Values() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasPrefix(k, "_") || k == "result" || k == "table" {
				continue
			}
			v := rec.Values()[k]
			if s, ok := v.(string); ok && tags[k] {
				pt.Tags = append(pt.Tags, feed.Tag{Key: k, Value: s})
				continue
			}
			if v == nil {
				continue
			}
			if lv, ok := lineprotocol.NewValue(v); ok {
				pt.Fields = append(pt.Fields, feed.Field{Key: k, Value: lv})
			}
		}
		fn(pt)
		n++
	}
	if err := res.Err(); err != nil {
		return false, fmt.Errorf("reading %s back from InfluxDB: %w", measurement, err)
	}
	return false, nil
}
