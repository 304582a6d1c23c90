package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/web"
)

// rollupEvery is how often the panels' rollups are stored.
const rollupEvery = 10 * time.Second

// maxRollupRows bounds the rollups one history request reads.
const maxRollupRows = 2_000_000

// storeRollups stores the panels' rollups that changed, through the
// write-ahead log like readings.
func (a *App) storeRollups() {
	points := a.engine.Rollups()
	if len(points) == 0 {
		return
	}
	pipeline{wal: a.wal, quar: a.quar}.Store("cityscreen-rollups", points, nil, func(err error) {
		if err != nil {
			a.log.Warn("the panels' rollups were not stored: their history misses these minutes", "points", len(points), "err", err)
		}
	})
}

// keepRollups stores the rollups every rollupEvery until ctx ends.
func (a *App) keepRollups(ctx context.Context) {
	t := time.NewTicker(rollupEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.storeRollups()
		}
	}
}

// historySteps are the steps chosen when a request names none: the
// shortest that gives at most historyChartPoints steps.
var historySteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

const historyChartPoints = 200

// PanelHistory is a panel's history from its rollups: its aggregate per
// step over the range, by group, and the same range earlier to compare.
func (a *App) PanelHistory(ctx context.Context, screenID, panelID string, q panel.HistoryRequest) (panel.HistoryAnswer, error) {
	spec, loc, ok := a.engine.PanelOf(screenID, panelID)
	if !ok {
		return panel.HistoryAnswer{}, web.ErrNoPanel
	}
	if spec.Agg == panel.AggOpen || spec.Agg == panel.AggOverdue || spec.Agg == panel.AggDueSoon || spec.Agg == panel.AggOldest {
		return panel.HistoryAnswer{}, &web.HistoryError{Msg: "a panel over open cases has no history: its value is the cases open now"}
	}
	span := q.To.Sub(q.From)
	if span <= 0 {
		return panel.HistoryAnswer{}, &web.HistoryError{Msg: "from must be before to"}
	}
	maxPoints := a.cfg.History.MaxPoints
	if q.Step == 0 {
		q.Step = historySteps[len(historySteps)-1]
		for _, s := range historySteps {
			if span/s <= historyChartPoints {
				q.Step = s
				break
			}
		}
		switch spec.Calendar {
		case panel.CalendarDay:
			q.Step = max(q.Step, 24*time.Hour)
		case panel.CalendarWeek:
			q.Step = max(q.Step, 7*24*time.Hour)
		}
	}
	if q.Step < time.Minute || q.Step%time.Minute != 0 {
		return panel.HistoryAnswer{}, &web.HistoryError{Msg: "step must be whole minutes, at least 1m"}
	}
	minStep := func(points int64) time.Duration {
		return time.Duration((points+int64(maxPoints)-1)/int64(maxPoints)) * q.Step
	}
	if steps := int64((span + q.Step - 1) / q.Step); steps > int64(maxPoints) {
		return panel.HistoryAnswer{}, &web.HistoryError{Msg: fmt.Sprintf("%d steps is more than %d points: the smallest step for this range is %s",
			steps, maxPoints, roundUpMinute(minStep(steps)))}
	}
	// The coarsest rollups that the steps are made of: days for day and
	// week steps (both in the screen's time zone), hours for steps of
	// whole hours (in a zone whose offset is whole hours), else minutes.
	res := "1m"
	if _, off := q.From.In(loc).Zone(); q.Step == 24*time.Hour || q.Step == 7*24*time.Hour {
		res = "1d"
	} else if q.Step%time.Hour == 0 && off%3600 == 0 {
		res = "1h"
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.History.Timeout)
	defer cancel()
	read := func(from, to time.Time) ([]panel.HistorySeries, error) {
		where := map[string]string{"screen": screenID, "panel": panelID, "res": res, "def": panel.Definition(spec)}
		for k, v := range q.Group {
			where["g_"+k] = v
		}
		var rows []panel.RollupRow
		full, err := a.store.Rows(ctx, a.cfg.History.Rollups, where, panel.StepStart(from, q.Step, loc), to, maxRollupRows,
			func(t time.Time, tags map[string]string, fields map[string]any) {
				rows = append(rows, panel.RollupRowOf(t, tags, fields))
			})
		switch {
		case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, web.ErrHistoryTimeout
		case err != nil:
			return nil, err
		case full:
			return nil, &web.HistoryError{Msg: fmt.Sprintf("the range holds more than %d rollups: pick a group or a step of an hour or more", maxRollupRows)}
		}
		return panel.HistoryOf(spec, loc, q.Step, rows)
	}
	series, err := read(q.From, q.To)
	if err != nil {
		return panel.HistoryAnswer{}, err
	}
	if n := countPoints(series); n > int64(maxPoints) {
		return panel.HistoryAnswer{}, &web.HistoryError{Msg: fmt.Sprintf("%d points (%d groups) is more than %d: pick a group, or a step of at least %s",
			n, len(series), maxPoints, roundUpMinute(minStep(n)))}
	}
	ans := panel.HistoryAnswer{Screen: screenID, Panel: panelID, Agg: spec.Agg, From: q.From.UTC(), To: q.To.UTC(), Step: panel.FormatDuration(q.Step),
		Series: series, Thresholds: spec.Thresholds}
	if q.Compare > 0 {
		earlier, err := read(q.From.Add(-q.Compare), q.To.Add(-q.Compare))
		if err != nil {
			return panel.HistoryAnswer{}, err
		}
		for i := range earlier {
			for j := range earlier[i].Points {
				earlier[i].Points[j].T = earlier[i].Points[j].T.Add(q.Compare)
			}
		}
		ans.Compare, ans.Offset = earlier, panel.FormatDuration(q.Compare)
		if ans.Compare == nil {
			ans.Compare = []panel.HistorySeries{}
		}
	}
	return ans, nil
}

func countPoints(series []panel.HistorySeries) int64 {
	var n int64
	for _, s := range series {
		n += int64(len(s.Points))
	}
	return n
}

func roundUpMinute(d time.Duration) string {
	return panel.FormatDuration((d + time.Minute - 1).Truncate(time.Minute))
}
