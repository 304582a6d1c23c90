// Package app wires cityscreen's stages together: MQTT ingest, feeds,
// storage, panels, the websocket hub and the web server. New builds them
// from a loaded configuration; Run serves until its context ends and then
// shuts everything down in order. Tests use it exactly as main does.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cityscreen/cityscreen/dashboard"
	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/auth"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/notify"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/quarantine"
	"github.com/cityscreen/cityscreen/internal/store"
	"github.com/cityscreen/cityscreen/internal/wal"
	"github.com/cityscreen/cityscreen/internal/web"
)

// App is one running cityscreen.
type App struct {
	cfg    *config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	broker *ingest.Broker
	// ingester stores the stream (or, on a screens-only instance, feeds
	// the panels); screens, when set, is a second one that takes the full
	// stream for the panels while ingester shares the storing with other
	// instances.
	ingester *ingest.Ingester
	screens  *ingest.Ingester
	// gate holds a full stream's readings while the panels are filled;
	// nil when the panels are fed from the stream that is stored.
	gate  *gate
	wal   *wal.Log
	quar  *quarantine.Quarantine
	audit *audit.Log
	auth  *auth.Manager
	// setupCode is the one-time code that creates the first administrator,
	// printed at start; "" when there is a way in already.
	setupCode string
	store     *store.Store
	engine    *panel.Engine
	alerts    *alert.Manager
	notifier  *notify.Notifier // nil: no Alertmanager
	playlists atomic.Pointer[[]panel.Playlist]
	hub       *hub.Hub
	listener  net.Listener
	server    *http.Server
	tls       bool // serving HTTPS; net/http rewrites server.TLSConfig while serving
	reloadMu  sync.Mutex
	reloadM   reloadMetrics
	// control is this instance's part in a cluster's control state; nil
	// when it keeps its users, tokens, feeds and alert actions to itself.
	control *control
	// With cluster.partials: collector takes a storing instance's share
	// into partials, and partials merges every share's into the panels
	// of an instance that serves screens (partials.go).
	collector    *collector
	partials     *partialGate
	partialsSent prometheus.Counter
}

// watchInterval is how often the configuration files are checked for changes.
const watchInterval = 2 * time.Second

// New builds every stage and binds the HTTP listener (and the embedded
// broker, when no broker URL is configured), so that an address in use is
// an error here, not later.
func New(cfg *config.Config, log *slog.Logger) (app *App, err error) {
	a := &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	// Each part that holds a file, a port or a goroutine pushes its
	// closer as it opens; a failure closes them in reverse.
	var opened []func()
	defer func() {
		if err != nil {
			for i := len(opened) - 1; i >= 0; i-- {
				opened[i]()
			}
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.reloadM = newReloadMetrics(a.reg)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration warning", "problem", w.String())
	}
	feeds, units, err := a.compileFeeds(cfg.AllFeeds(), nil)
	if err != nil {
		return nil, err
	}

	a.hub = hub.New(log, a.reg, hub.Options{
		ClientQueue: cfg.Hub.ClientQueue, WriteTimeout: cfg.Hub.WriteTimeout, PingInterval: cfg.Hub.PingInterval,
		ReadLimit: int64(cfg.Hub.ReadLimit), AllowedOrigins: cfg.HTTP.AllowedOrigins, PublicOrigin: cfg.HTTP.PublicOrigin(),
	})
	// Alert events go to InfluxDB through the write-ahead log like readings.
	a.alerts = alert.New(func(points []feed.Point, done func(error)) {
		pipeline{wal: a.wal, quar: a.quar, engine: a.engine}.Store("cityscreen-alerts", points, nil, done)
	}, log, a.reg)
	a.engine = panel.New(servedScreens(cfg), a.hub, log, a.reg, panel.Options{
		Coalesce: cfg.Hub.Coalesce, Units: units, Alerts: a.alerts, CasesDir: filepath.Join(cfg.State.Dir, "cases"),
		Run:     fmt.Sprintf("%s/%d", cfg.MQTT.ClientID, time.Now().UnixMilli()), // this run, in the panels' rollups
		Rollups: cfg.History.Rollups,
	})
	a.alerts.SetTouch(a.engine.Touch)
	a.alerts.SetEscalation(cfg.Alerts.EscalateAfter)
	if len(cfg.Alertmanager.URLs) > 0 && cfg.Cluster.Serves() {
		a.notifier, err = notify.New(notify.Options{
			URLs: cfg.Alertmanager.URLs, Resend: cfg.Alertmanager.Resend, Hold: cfg.Alertmanager.Hold, Timeout: cfg.Alertmanager.Timeout,
			StatePath: filepath.Join(cfg.State.Dir, "alertmanager.json"), PublicURL: cfg.HTTP.PublicURL,
			SilenceAcknowledged: cfg.Alertmanager.SilenceAcknowledged,
		}, log, a.reg)
		if err != nil {
			return nil, err
		}
		a.alerts.SetNotify(a.notifier.Changed)
	}
	a.engine.SetCases(caseSpecs(cfg))
	a.playlists.Store(&cfg.Playlists)
	specs := cfg.FeedsByID()
	for _, s := range a.engine.Screens() {
		views, _ := a.engine.Views(s.ID)
		meta := panel.Meta(s, specs, cfg.Labels)
		a.hub.AddScreen(s.ID, &meta, views)
	}
	if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	walDir := filepath.Join(cfg.State.Dir, "wal")
	w, err := wal.Open(wal.Options{Dir: walDir, MaxBytes: cfg.WAL.MaxBytes, SegmentBytes: cfg.WAL.SegmentBytes, NoSync: cfg.WAL.NoFsync,
		CommitInterval: cfg.WAL.CommitInterval, OnCommit: walCommits(a.reg)}, log)
	if err != nil {
		return nil, err
	}
	a.wal = w
	opened = append(opened, func() { w.Close() })
	if cfg.WAL.NoFsync {
		log.Warn("wal.no_fsync is set: a power cut can lose readings already acknowledged to the broker")
	}
	q, err := quarantine.Open(filepath.Join(cfg.State.Dir, "quarantine"), cfg.WAL.QuarantineMaxBytes, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.quar = q
	opened = append(opened, func() { q.Close() })
	instance := "" // a lone instance's records name none
	if cfg.Cluster.Shared() {
		instance = cfg.Cluster.Instance
	}
	al, err := audit.OpenAs(AuditPath(cfg.State.Dir), []byte(cfg.Auth.AuditKey), instance)
	if err != nil {
		return nil, err
	}
	opened = append(opened, func() { al.Close() })
	if al.Broken != nil {
		log.Error("the audit log fails verification: someone changed it; what was found is recorded and new records go on after it", "err", al.Broken)
	}
	if cfg.Auth.AuditKey == "" {
		log.Warn("auth.audit_key is not set: the audit log's head is not signed, so someone who can write the state directory can remove its newest records unseen")
	}
	a.audit = al
	a.auditCheckpoint("start")
	am, err := openAuth(cfg, log)
	if err != nil {
		return nil, err
	}
	a.auth = am
	if am.NeedsSetup() {
		if a.setupCode, err = am.NewSetupCode(); err != nil {
			return nil, err
		}
	} else {
		os.Remove(SetupCodePath(cfg.State.Dir)) // used, or an administrator came from the environment
	}
	// The rejected messages each feed lists survive restarts: they are read
	// back from the quarantine.
	byID := make(map[string]*feed.Feed, len(feeds))
	for _, f := range feeds {
		byID[f.ID()] = f
	}
	if err := q.Each(func(e quarantine.Entry) {
		if f := byID[e.Feed]; f != nil && e.Kind == quarantine.KindRejected {
			f.Keep(e.Topic, e.Payload, e.Time, e.Reason)
		}
	}); err != nil {
		log.Warn("could not read the quarantine back", "err", err)
	}
	a.reg.MustRegister(walCollector(w))
	var influxTLS, mqttTLS *tls.Config
	if cfg.Influx.TLSCA != "" {
		if influxTLS, err = config.ClientTLS(cfg.Influx.TLSCA, "", ""); err != nil {
			return nil, fmt.Errorf("influx tls: %w", err)
		}
	}
	if cfg.MQTT.TLSCA != "" || cfg.MQTT.TLSCert != "" {
		if mqttTLS, err = config.ClientTLS(cfg.MQTT.TLSCA, cfg.MQTT.TLSCert, cfg.MQTT.TLSKey); err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
	}
	a.store = store.New(store.Options{
		URL: cfg.Influx.URL, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket, Token: cfg.Influx.Token, TLS: influxTLS,
		BatchSize: cfg.Influx.BatchSize, FlushInterval: cfg.Influx.FlushInterval, Timeout: cfg.Influx.Timeout,
		Checkpoint: store.CheckpointPath(walDir),
	}, w, q, log, a.reg)

	brokerURL := cfg.MQTT.URL
	if brokerURL == "" {
		b, err := ingest.StartBroker(cfg.MQTT.EmbeddedAddr, log)
		if err != nil {
			return nil, err
		}
		a.broker = b
		opened = append(opened, func() { b.Close() })
		brokerURL = b.URL()
		log.Info("embedded MQTT broker listening", "addr", cfg.MQTT.EmbeddedAddr)
	}
	a.buildIngest(brokerURL, mqttTLS, feeds)
	if cfg.Cluster.Shared() {
		if err := a.joinCluster(mqttTLS); err != nil {
			return nil, err
		}
		opened = append(opened, a.control.store.Stop)
	}
	ready := []web.Check{
		{Name: "mqtt", Check: a.mqttReady},
		{Name: "influxdb", Check: a.store.Ready},
		{Name: "wal", Check: a.walReady},
	}
	if a.control != nil {
		ready = append(ready, web.Check{Name: "cluster", Check: a.clusterReady})
	}

	handler := web.Handler(web.Deps{
		Hub: a.hub, Screens: a.engine, Feeds: a.ingester, Gatherer: a.reg, Dashboard: dashboard.FS(), Log: log,
		Auth: a.auth, APIRate: cfg.Auth.APIRate, TLS: cfg.HTTP.TLSCert != "",
		TrustedProxies: cfg.HTTP.Proxies(), PublicOrigin: cfg.HTTP.PublicOrigin(), AllowedOrigins: cfg.HTTP.AllowedOrigins,
		WebsocketsPerClient: cfg.HTTP.WebsocketsPerClient,
		Ready:               ready,
		Status:              a.status,
		Alerts:              a.alerts,
		Playlists:           a,
		Registry:            a,
		Replayer:            a,
		Previewer:           a.ingester,
		Privacy:             a.ingester.Privacy,
		Cases:               a,
		Histories:           a,
		Auditor:             a.audit,
		Displays:            a,
	})
	l, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	a.listener = l
	opened = append(opened, func() { l.Close() })
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10, // a request line and headers; a longer path is refused (431)
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("http tls: %w", err)
		}
		a.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		a.tls = true
	}
	return a, nil
}

// Playlists are the configured playlists.
func (a *App) Playlists() []panel.Playlist { return *a.playlists.Load() }

// URL is where the dashboard is served.
func (a *App) URL() string {
	scheme := "http"
	if a.tls {
		scheme = "https"
	}
	return scheme + "://" + a.listener.Addr().String() + "/"
}

// Run serves until ctx ends, then shuts down within shutdown.timeout: it
// starts the stages (stages.go) in order and stops them in reverse. The
// HTTP server stops taking requests and websockets get a close frame; no
// more messages are taken; those already taken are made durable and
// acknowledged; the write-ahead log is flushed and the forwarder writes
// what it can of it to InfluxDB (the rest waits in the log for the next
// start).
func (a *App) Run(ctx context.Context) error {
	host, _, _ := net.SplitHostPort(a.listener.Addr().String())
	if !a.tls && !config.IsLoopback(host) {
		a.log.Warn("serving plain HTTP on a non-loopback address: anyone on the network can read the screens", "addr", a.listener.Addr().String())
	}
	timeout := a.cfg.Shutdown.Timeout
	served := make(chan error, 1)
	started, err := startStages(ctx, a.stages(served), timeout/2)
	if err != nil {
		return err
	}
	a.log.Info("cityscreen serving", "url", a.URL(), "role", a.cfg.Cluster.Role, "feeds", len(a.cfg.AllFeeds()), "screens", len(a.engine.Screens()))
	if a.setupCode != "" && a.auth.NeedsSetup() {
		// The code is in a file only the service's user can read, never
		// in the log: logs are collected and shipped.
		a.log.Warn("no administrator yet: create the first one at the sign-in page with the one-time setup code in the file named here",
			"page", a.URL()+"login.html", "file", SetupCodePath(a.cfg.State.Dir))
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-served:
	}
	start := time.Now()
	a.log.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout/2)
	defer cancel()
	stopStages(sctx, started)
	if runErr == nil {
		<-served
	}
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return runErr
}

// auditCheckpoint logs the audit log's signed head: kept off the host
// with the logs, it vouches for the log even if the head beside it is
// lost with the newest records.
func (a *App) auditCheckpoint(when string) {
	seq, hash, mac := a.audit.Head()
	a.log.Info("audit checkpoint", "at", when, "seq", seq, "hash", hash, "mac", mac)
}

// caseSpecs are the case feeds' definitions, by feed: none on an
// instance that serves no screens, which keeps no book.
func caseSpecs(cfg *config.Config) map[string]*feed.CaseSpec {
	out := map[string]*feed.CaseSpec{}
	if !cfg.Cluster.Serves() {
		return out
	}
	for _, f := range cfg.AllFeeds() {
		if f.Cases != nil {
			out[f.ID] = f.Cases
		}
	}
	return out
}

// SetupCodePath is where the one-time setup code is written.
func SetupCodePath(stateDir string) string { return filepath.Join(stateDir, "setup-code") }

// AuditPath is where the audit log of a state directory is.
func AuditPath(stateDir string) string { return filepath.Join(stateDir, "audit.log") }

// status is the storage path's state, shown in /readyz.
func (a *App) status() map[string]any {
	w, st := a.wal.Stats(), a.store.Stats()
	return map[string]any{"storage": map[string]any{
		"forwarder":       st.State,
		"backlog_seconds": st.Backlog.Seconds(),
		"wal_bytes":       w.Bytes,
		"wal_max_bytes":   w.MaxBytes,
		"wal_full":        w.Full,
	}}
}

// walReady is not ready while the log is full or cannot be written.
func (a *App) walReady(context.Context) error {
	st := a.wal.Stats()
	switch {
	case st.Err != nil:
		return fmt.Errorf("the write-ahead log cannot be written: %w", st.Err)
	case st.Full:
		return fmt.Errorf("the write-ahead log is full (%d of %d bytes): messages are not acknowledged until InfluxDB catches up", st.Bytes, st.MaxBytes)
	}
	return nil
}

func (a *App) closeBroker() {
	if a.broker != nil {
		a.broker.Close()
	}
}

// observer takes readings for the panels.
type observer interface {
	Observe(feedID string, points []feed.Point)
}

// pipeline makes what ingest decoded durable and shows it on the panels.
type pipeline struct {
	wal    *wal.Log
	quar   *quarantine.Quarantine
	engine observer // nil: the panels take the stream elsewhere
}

// Store appends a message's points to the write-ahead log as line protocol
// (encoding them unless line already holds them) and, at once, to the
// panels: screens do not wait for the disk.
func (p pipeline) Store(feedID string, points []feed.Point, line []byte, done func(error)) {
	if line == nil {
		var enc lineprotocol.Encoder
		for i := range points {
			points[i].AppendLine(&enc)
		}
		if err := enc.Err(); err != nil {
			done(fmt.Errorf("feed %s made a point line protocol cannot hold: %w", feedID, err))
			return
		}
		line = enc.Bytes()
	}
	p.wal.Append(line, done)
	if p.engine != nil {
		p.engine.Observe(feedID, points)
	}
}

// panelsOnly shows readings on the panels and keeps nothing: the stream it
// gets is stored by the instances of the share group.
type panelsOnly struct{ panels observer }

func (p panelsOnly) Store(feedID string, points []feed.Point, _ []byte, done func(error)) {
	p.panels.Observe(feedID, points)
	done(nil)
}

// Quarantine keeps nothing: the storing instances keep rejected messages
// (a screens-only instance still lists them in its feeds' rejected lists).
func (panelsOnly) Quarantine(_, _ string, _ []byte, _ time.Time, _ string, done func(error)) {
	done(nil)
}

// Quarantine keeps a rejected message durably.
func (p pipeline) Quarantine(feedID, topic string, payload []byte, received time.Time, reason string, done func(error)) {
	p.quar.Add(quarantine.Entry{Kind: quarantine.KindRejected, Time: received.UTC(), Feed: feedID, Topic: topic, Reason: reason, Payload: payload}, done)
}
