package web

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cityscreen/cityscreen/internal/panel"
)

// Histories answers a panel's history.
type Histories interface {
	PanelHistory(ctx context.Context, screen, panel string, q panel.HistoryRequest) (panel.HistoryAnswer, error)
}

// Errors of PanelHistory.
var (
	ErrNoPanel        = errors.New("no such panel")
	ErrHistoryTimeout = errors.New("the history's query took longer than its time limit and was cancelled")
)

// HistoryError is a request the history cannot answer, and why (400).
type HistoryError struct{ Msg string }

func (e *HistoryError) Error() string { return e.Msg }

// parseWhen reads a history bound: RFC 3339, "now", or relative to now
// ("-24h", "-7d", "-90m").
func parseWhen(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := parseSpan(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-12-04T08:00:00+08:00), now, or relative like -24h or -7d", s)
	}
	return t, nil
}

// parseSpan reads a duration with days: "7d", "1d12h", "90m".
func parseSpan(s string) (time.Duration, error) {
	var days time.Duration
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3660 {
			return 0, fmt.Errorf("%q: want a duration like 15m, 24h or 7d", s)
		}
		days, s = time.Duration(n)*24*time.Hour, rest
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration like 15m, 24h or 7d", s)
	}
	return days + d, nil
}

// history answers GET /api/screens/{id}/panels/{panel}/history.
func (s *server) history(w http.ResponseWriter, r *http.Request) {
	screen, panelID := r.PathValue("id"), r.PathValue("panel")
	if !s.mayShow(w, r, screen) {
		return
	}
	q, err := historyRequest(r, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, "format: json (the default) or csv")
		return
	}
	ans, err := s.Histories.PanelHistory(r.Context(), screen, panelID, q)
	var he *HistoryError
	switch {
	case errors.Is(err, ErrNoPanel):
		writeError(w, http.StatusNotFound, "no panel "+panelID+" on screen "+screen)
		return
	case errors.As(err, &he):
		writeError(w, http.StatusBadRequest, he.Msg)
		return
	case errors.Is(err, ErrHistoryTimeout):
		writeError(w, http.StatusGatewayTimeout, err.Error())
		return
	case err != nil:
		s.log.Warn("reading a panel's history", "screen", screen, "panel", panelID, "err", err)
		writeError(w, http.StatusBadGateway, "the history cannot be read from InfluxDB now")
		return
	}
	if format == "csv" {
		writeHistoryCSV(w, ans)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func historyRequest(r *http.Request, now time.Time) (panel.HistoryRequest, error) {
	v := r.URL.Query()
	get := func(k, def string) string {
		if x := v.Get(k); x != "" {
			return x
		}
		return def
	}
	var q panel.HistoryRequest
	var err error
	if q.From, err = parseWhen(get("from", "-24h"), now); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseWhen(get("to", "now"), now); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if !q.From.Before(q.To) {
		return q, errors.New("from must be before to")
	}
	if st := v.Get("step"); st != "" {
		if q.Step, err = parseSpan(st); err != nil {
			return q, fmt.Errorf("step: %w", err)
		}
	}
	if c := v.Get("compare"); c != "" {
		if q.Compare, err = parseSpan(c); err != nil || q.Compare <= 0 {
			return q, fmt.Errorf("compare: want a span like 1d or 7d")
		}
	}
	for _, g := range v["group"] {
		k, val, ok := strings.Cut(g, "=")
		if !ok || k == "" {
			return q, fmt.Errorf("group: %q: want tag=value", g)
		}
		if q.Group == nil {
			q.Group = map[string]string{}
		}
		q.Group[k] = val
	}
	return q, nil
}

// writeHistoryCSV writes the history as a CSV file: time (RFC 3339),
// one column per tag, the value, and with a comparison the series
// (current, or the comparison's offset) each row belongs to.
func writeHistoryCSV(w http.ResponseWriter, ans panel.HistoryAnswer) {
	tagSet := map[string]bool{}
	for _, s := range append(slices.Clone(ans.Series), ans.Compare...) {
		for k := range s.Tags {
			tagSet[k] = true
		}
	}
	tags := slices.Sorted(maps.Keys(tagSet))
	name := fmt.Sprintf("%s-%s-%s-%s.csv", ans.Screen, ans.Panel, ans.From.Format("20060102T1504Z"), ans.To.Format("20060102T1504Z"))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	cw := csv.NewWriter(w)
	header := append([]string{"time"}, tags...)
	header = append(header, ans.Agg)
	if ans.Compare != nil {
		header = append(header, "series")
	}
	cw.Write(header)
	rows := func(series []panel.HistorySeries, label string) {
		for _, s := range series {
			for _, p := range s.Points {
				row := []string{p.T.UTC().Format(time.RFC3339)}
				for _, k := range tags {
					row = append(row, csvText(s.Tags[k]))
				}
				row = append(row, strconv.FormatFloat(p.V, 'g', -1, 64))
				if ans.Compare != nil {
					row = append(row, label)
				}
				cw.Write(row)
			}
		}
	}
	rows(ans.Series, "current")
	rows(ans.Compare, "-"+ans.Offset)
	cw.Flush()
}

// csvText keeps a tag value from being taken for a formula by a
// spreadsheet (CSV injection): one that begins with =, +, -, @ or a
// control character gets a leading apostrophe.
func csvText(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
