package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// reloadMetrics count configuration reloads.
type reloadMetrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) reloadMetrics {
	m := reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_config_reloads_total", Help: "Reloads of the feed and screen files, by result.",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cityscreen_config_last_reload_successful", Help: "1 if the last reload applied, 0 if it failed and the previous definitions stay in force.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastSuccess.Set(1)
	reg.MustRegister(m.reloads, m.lastSuccess)
	return m
}

// Reload reads the configuration again and applies its feeds and screens
// while running. Everything is loaded and validated first; with any
// problem nothing changes, and the problems are logged (file:line) and
// counted. Changes to the main file's other settings take effect at the
// next start. Reload is safe to call from any goroutine.
func (a *App) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reloadLocked()
}

func (a *App) reloadLocked() error {
	cfg, err := config.Load(a.cfg.File, a.cfg.Env)
	if err != nil {
		a.reloadM.reloads.WithLabelValues("failure").Inc()
		a.reloadM.lastSuccess.Set(0)
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				a.log.Error("configuration not reloaded: the previous definitions stay in force", "problem", p.String())
			}
		} else {
			a.log.Error("configuration not reloaded: the previous definitions stay in force", "err", err)
		}
		return err
	}
	feeds, units, err := a.compileFeeds(cfg.AllFeeds(), a.ingester.Feeds())
	if err != nil {
		a.reloadM.reloads.WithLabelValues("failure").Inc()
		a.reloadM.lastSuccess.Set(0)
		a.log.Error("configuration not reloaded: the previous definitions stay in force", "err", err)
		return err
	}
	a.setFeeds(feeds, cfg.PersonalData())
	for _, w := range cfg.Warnings() {
		a.log.Warn("configuration warning", "problem", w.String())
	}
	a.engine.SetCases(caseSpecs(cfg))
	a.alerts.SetEscalation(cfg.Alerts.EscalateAfter)
	added, changed, removed := a.engine.SetScreens(servedScreens(cfg), units)
	if a.collector != nil {
		a.collector.engine.SetScreens(cfg.Screens, units)
	}
	a.alerts.Retain(a.engine.Exists) // a panel that is gone has no alert
	fresh := map[string]bool{}
	for _, id := range append(added, changed...) {
		fresh[id] = true
	}
	byID := cfg.FeedsByID()
	for _, s := range a.engine.Screens() {
		// A screen whose panels are unchanged gets a new snapshot when
		// its meta changed: a feed's labels, say.
		meta := panel.Meta(s, byID, cfg.Labels)
		if !fresh[s.ID] && reflect.DeepEqual(a.hub.Meta(s.ID), &meta) {
			continue
		}
		views, _ := a.engine.Views(s.ID)
		a.hub.AddScreen(s.ID, &meta, views)
	}
	for _, id := range removed {
		a.hub.RemoveScreen(id)
	}
	a.playlists.Store(&cfg.Playlists)
	a.reloadM.reloads.WithLabelValues("success").Inc()
	a.reloadM.lastSuccess.Set(1)
	a.log.Info("configuration reloaded", "feeds", len(feeds), "screens", len(cfg.Screens),
		"screens_added", len(added), "screens_changed", len(changed), "screens_removed", len(removed))
	return nil
}

// compileFeeds builds the feeds of specs, keeping the feeds of previous
// whose definition is unchanged (with their counters and rejections) and
// letting changed ones inherit them. It also returns each field's unit.
func (a *App) compileFeeds(specs []feed.Spec, previous []*feed.Feed) ([]*feed.Feed, map[string]map[string]feed.Text, error) {
	old := map[string]*feed.Feed{}
	for _, f := range previous {
		old[f.ID()] = f
	}
	feeds := make([]*feed.Feed, 0, len(specs))
	units := map[string]map[string]feed.Text{}
	for _, spec := range specs {
		f := old[spec.ID]
		if f == nil || !reflect.DeepEqual(f.Spec(), spec.WithDefaults()) {
			nf, err := feed.New(spec, feed.Options{MaxPayload: a.cfg.Ingest.MaxPayload, KeepRejected: a.cfg.Ingest.KeepRejected})
			if err != nil {
				return nil, nil, err
			}
			if f != nil {
				nf.Inherit(f)
			}
			f = nf
		}
		feeds = append(feeds, f)
		units[spec.ID] = map[string]feed.Text{}
		for name, fs := range f.Spec().Fields {
			units[spec.ID][name] = fs.Unit
		}
	}
	return feeds, units, nil
}

// watch reloads whenever the main file or a file in feeds/ or screens/
// changes (polling, so it works on every file system), until ctx ends.
func (a *App) watch(ctx context.Context, every time.Duration) {
	last := a.fingerprint()
	repeat(ctx, every, func() {
		if now := a.fingerprint(); now != last {
			last = now
			a.Reload()
		}
	})
}

// repeat calls fn every interval until ctx ends.
func repeat(ctx context.Context, every time.Duration, fn func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// fingerprint names every configuration file with its size and time.
func (a *App) fingerprint() string {
	dir := filepath.Dir(a.cfg.File)
	files := []string{a.cfg.File, filepath.Join(dir, "labels.yaml")}
	for _, sub := range []string{"feeds", "screens", "playlists"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, "*.yaml"))
		files = append(files, m...)
	}
	// The maps and stations files the screens name.
	for _, s := range a.engine.Screens() {
		if s.Map != nil {
			files = append(files, config.Beside(a.cfg.File, s.Map.File))
		}
		for _, p := range s.Panels {
			if p.Stations != "" {
				files = append(files, config.Beside(a.cfg.File, p.Stations))
			}
		}
	}
	var sb strings.Builder
	for _, f := range files {
		if info, err := os.Stat(f); err == nil {
			fmt.Fprintf(&sb, "%s %d %d\n", f, info.Size(), info.ModTime().UnixNano())
		}
	}
	return sb.String()
}

// watchSilence logs each feed that goes silent (nothing for longer than its
// declared interval) and each that speaks again, until ctx ends. Screens
// show silent feeds in their alert ticker; cityscreen_feed_silent counts.
func (a *App) watchSilence(ctx context.Context, every time.Duration) {
	silent := map[string]bool{}
	repeat(ctx, every, func() {
		for _, f := range a.ingester.Feeds() {
			st := f.Stats()
			switch {
			case st.Silent && !silent[f.ID()]:
				last := "never since the start"
				if st.LastSeen != nil {
					last = st.LastSeen.Format(time.RFC3339)
				}
				a.log.Warn("feed silent: no message within its interval", "feed", f.ID(), "interval", time.Duration(f.Spec().Interval), "last_seen", last)
			case !st.Silent && silent[f.ID()]:
				a.log.Info("feed speaks again", "feed", f.ID())
			}
			silent[f.ID()] = st.Silent
		}
	})
}
