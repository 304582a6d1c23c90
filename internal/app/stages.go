package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// A stage is one part of a running App. Run starts the stages in the
// order of their list and stops them in reverse, so that one list holds
// both orders: a stage starts after the stages it needs and stops before
// them.
type stage struct {
	name string
	// start runs the stage; nil when New opened it already (the list
	// then places only its stop). An error stops the stages started.
	start func(ctx context.Context) error
	// stop ends it within ctx's deadline; nil when nothing needs ending.
	stop func(ctx context.Context)
}

// startStages starts each stage in order. It returns the stages started,
// to be given to stopStages; after an error it has stopped them already.
// Those are given within to stop.
func startStages(ctx context.Context, stages []stage, within time.Duration) ([]stage, error) {
	for i, s := range stages {
		if s.start == nil {
			continue
		}
		if err := s.start(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), within)
			defer cancel()
			stopStages(sctx, stages[:i])
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return stages, nil
}

// stopStages stops the stages in reverse order.
func stopStages(ctx context.Context, stages []stage) {
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i].stop != nil {
			stages[i].stop(ctx)
		}
	}
}

// goStage is a stage that runs fn on a goroutine until its stop cancels
// fn's context, and waits for it to return.
func goStage(name string, fn func(ctx context.Context)) stage {
	var cancel context.CancelFunc
	var done sync.WaitGroup
	return stage{
		name: name,
		start: func(ctx context.Context) error {
			// Stopped by its stop only: the stages before it still run
			// while Run's context ends.
			runCtx, c := context.WithCancel(context.WithoutCancel(ctx))
			cancel = c
			done.Go(func() { fn(runCtx) })
			return nil
		},
		stop: func(context.Context) {
			cancel()
			done.Wait()
		},
	}
}

// stages lists what Run starts, in order; Run stops them in reverse.
// The web server's end is sent on served.
func (a *App) stages(served chan<- error) []stage {
	timeout := a.cfg.Shutdown.Timeout
	var stopPprof func()
	stopAlerts := make(chan struct{})
	var alertsDone sync.WaitGroup
	return []stage{
		{name: "profiler", start: func(context.Context) (err error) {
			stopPprof, err = a.startPprof()
			return err
		}, stop: func(context.Context) { stopPprof() }},
		{name: "embedded broker", stop: func(context.Context) { a.closeBroker() }},
		{name: "cluster control", stop: func(context.Context) {
			if a.control != nil {
				a.control.store.Stop()
			}
		}},
		{name: "audit log", stop: func(context.Context) {
			a.auditCheckpoint("stop")
			a.audit.Close()
		}},
		{name: "quarantine", stop: func(context.Context) { a.quar.Close() }},
		// The forwarder writes what the log holds, for up to half the
		// shutdown timeout, after the log has closed.
		goStage("forwarder", func(ctx context.Context) { a.store.Run(ctx, timeout/2) }),
		{name: "write-ahead log", stop: func(context.Context) { a.wal.Close() }},
		{name: "first evaluation", start: func(ctx context.Context) error {
			a.fill(ctx)
			a.engine.PublishAll()
			return nil
		}},
		// The first evaluation is done: alerts kept from before a restart
		// that it did not raise again have cleared. Before the engine
		// runs, so that no change of its comes between.
		{name: "alerts kept", start: func(context.Context) error {
			if a.notifier != nil {
				a.notifier.Reconcile(a.alerts.Active())
			}
			return nil
		}},
		// What Alertmanager was not told yet is kept for the next start.
		goStage("alertmanager", func(ctx context.Context) {
			if a.notifier != nil {
				a.notifier.Run(ctx)
			}
		}),
		{name: "alert events", start: func(context.Context) error {
			alertsDone.Go(func() { a.alerts.Run(stopAlerts) })
			return nil
		}, stop: func(context.Context) {
			close(stopAlerts)
			alertsDone.Wait()
		}},
		// The minute in progress, before the log closes.
		{name: "rollups", stop: func(context.Context) { a.storeRollups() }},
		// A last snapshot: the next start reads no journal.
		{name: "cases", stop: func(context.Context) { a.engine.CloseCases() }},
		// Stopped before the log closes: its last alert events are in it.
		goStage("panel engine", a.engine.Run),
		{name: "ingest", start: func(context.Context) error {
			for _, in := range a.ingesters() {
				in.Start() // a second Start (after a fill that held the stream) does nothing
			}
			return nil
		}, stop: func(ctx context.Context) {
			// Those already taken are made durable and acknowledged.
			for _, in := range a.ingesters() {
				if err := in.Stop(ctx); err != nil {
					a.log.Warn("some messages were not settled in time; the broker delivers them again", "err", err)
				}
			}
		}},
		{name: "websockets", stop: func(ctx context.Context) { a.hub.Shutdown(ctx) }},
		{name: "web server", start: func(context.Context) error {
			go func() {
				var err error
				if a.tls {
					err = a.server.ServeTLS(a.listener, "", "")
				} else {
					err = a.server.Serve(a.listener)
				}
				if errors.Is(err, http.ErrServerClosed) {
					err = nil
				}
				served <- err
			}()
			return nil
		}, stop: func(ctx context.Context) { a.server.Shutdown(ctx) }},
		goStage("watchers", a.watchers),
	}
}

// fill fills the panels from InfluxDB before any screen sees them. A
// full stream is taken on a clean session: it is subscribed first and
// what comes is held, then the panels are filled around it (fill.go).
func (a *App) fill(ctx context.Context) {
	switch {
	case a.gate != nil:
		for _, in := range a.ingesters() {
			in.Start()
		}
		a.fillPanels(ctx)
		a.log.Info("panels take the full stream", "held_while_filling", a.gate.Open())
		if a.partials != nil {
			a.log.Info("panels take every share's partials", "held_while_filling", a.partials.Open())
		}
	case a.cfg.Cluster.Serves():
		a.fillPanels(ctx) // before any live message
	}
}

// watchers runs the App's periodic work until ctx ends: the
// configuration files, the case book's snapshots, the rollups, expired
// sessions, silences and, in a cluster, the shared control state.
func (a *App) watchers(ctx context.Context) {
	var wg sync.WaitGroup
	if a.collector != nil && a.control != nil {
		wg.Go(func() { a.publishPartials(ctx, a.cfg.Cluster.PartialInterval) })
	}
	if a.control != nil {
		wg.Go(func() { a.applyFeeds(ctx) })
		wg.Go(func() { a.shareAuditHead(ctx, 2*time.Second) })
	}
	wg.Go(func() { a.watch(ctx, watchInterval) })
	wg.Go(func() { a.keepCases(ctx) })
	wg.Go(func() { a.keepRollups(ctx) })
	wg.Go(func() { a.sweepAuth(ctx, time.Minute) })
	wg.Go(func() { a.watchSilence(ctx, 5*time.Second) })
	wg.Wait()
}
