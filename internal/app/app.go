// Package app wires cityscreen's stages together: MQTT ingest, feeds,
// storage, panels, the websocket hub and the web server. New builds them
// from a loaded configuration; Run serves until its context ends and then
// shuts everything down in order. Tests use it exactly as main does.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cityscreen/cityscreen/dashboard"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/store"
	"github.com/cityscreen/cityscreen/internal/web"
)

// ShutdownTimeout bounds how long Run takes to stop once its context ends.
const ShutdownTimeout = 15 * time.Second

// App is one running cityscreen.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	broker   *ingest.Broker
	ingester *ingest.Ingester
	store    *store.Store
	engine   *panel.Engine
	hub      *hub.Hub
	listener net.Listener
	server   *http.Server
	tls      bool // serving HTTPS; net/http rewrites server.TLSConfig while serving
}

// New builds every stage and binds the HTTP listener (and the embedded
// broker, when no broker URL is configured), so that an address in use is
// an error here, not later.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	feeds := make([]*feed.Feed, 0, len(cfg.Feeds))
	units := map[string]map[string]string{}
	for _, spec := range cfg.Feeds {
		f, err := feed.New(spec, feed.Options{MaxPayload: cfg.Ingest.MaxPayload, KeepRejected: cfg.Ingest.KeepRejected})
		if err != nil {
			return nil, err
		}
		feeds = append(feeds, f)
		units[spec.ID] = map[string]string{}
		for name, fs := range f.Spec().Fields {
			units[spec.ID][name] = fs.Unit
		}
	}

	a.hub = hub.New(log, a.reg, hub.Options{
		ClientQueue: cfg.Hub.ClientQueue, WriteTimeout: cfg.Hub.WriteTimeout, PingInterval: cfg.Hub.PingInterval,
		ReadLimit: int64(cfg.Hub.ReadLimit), AllowedOrigins: cfg.HTTP.AllowedOrigins,
	})
	a.engine = panel.New(cfg.Screens, a.hub, log, a.reg, panel.Options{Coalesce: cfg.Hub.Coalesce, Units: units})
	for _, s := range a.engine.Screens() {
		views, _ := a.engine.Views(s.ID)
		a.hub.AddScreen(s.ID, views)
	}
	a.store = store.New(store.Options{
		URL: cfg.Influx.URL, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket, Token: cfg.Influx.Token,
		BatchSize: cfg.Influx.BatchSize, FlushInterval: cfg.Influx.FlushInterval,
		MaxBuffered: cfg.Influx.MaxBuffered, Timeout: cfg.Influx.Timeout,
	}, log, a.reg)

	brokerURL := cfg.MQTT.URL
	if brokerURL == "" {
		b, err := ingest.StartBroker(cfg.MQTT.EmbeddedAddr, log)
		if err != nil {
			return nil, err
		}
		a.broker = b
		brokerURL = b.URL()
		log.Info("embedded MQTT broker listening", "addr", cfg.MQTT.EmbeddedAddr)
	}
	workers := cfg.Ingest.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	a.ingester = ingest.New(ingest.Options{
		URL: brokerURL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		ConnectTimeout: cfg.MQTT.ConnectTimeout, MaxReconnectInterval: cfg.MQTT.MaxReconnectInterval,
		Workers: workers, Queue: cfg.Ingest.Queue,
	}, feeds, pipeline{a.store, a.engine}, log, a.reg)

	handler := web.Handler(web.Deps{
		Hub: a.hub, Screens: a.engine, Feeds: a.ingester, Gatherer: a.reg, Dashboard: dashboard.FS(), Log: log,
		AdminToken: cfg.Admin.Token,
		Ready: []web.Check{
			{Name: "mqtt", Check: func(context.Context) error { return a.ingester.Ready() }},
			{Name: "influxdb", Check: a.store.Ready},
		},
	})
	l, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		a.closeBroker()
		return nil, fmt.Errorf("http: %w", err)
	}
	a.listener = l
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			l.Close()
			a.closeBroker()
			return nil, fmt.Errorf("http tls: %w", err)
		}
		a.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		a.tls = true
	}
	return a, nil
}

// URL is where the dashboard is served.
func (a *App) URL() string {
	scheme := "http"
	if a.tls {
		scheme = "https"
	}
	return scheme + "://" + a.listener.Addr().String() + "/"
}

// Run serves until ctx ends, then shuts down: the HTTP server stops taking
// requests, websockets get a close frame, the broker connection closes, the
// queued messages are decoded, and buffered points are written.
func (a *App) Run(ctx context.Context) error {
	host, _, _ := net.SplitHostPort(a.listener.Addr().String())
	if !a.tls && !config.IsLoopback(host) {
		a.log.Warn("serving plain HTTP on a non-loopback address: anyone on the network can read the screens", "addr", a.listener.Addr().String())
	}
	engineCtx, stopEngine := context.WithCancel(context.Background())
	storeCtx, stopStore := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.engine.Run(engineCtx) }()
	go func() { defer wg.Done(); a.store.Run(storeCtx, ShutdownTimeout/2) }()
	a.ingester.Start()

	serveErr := make(chan error, 1)
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
		serveErr <- err
	}()
	a.log.Info("cityscreen serving", "url", a.URL(), "feeds", len(a.cfg.Feeds), "screens", len(a.cfg.Screens),
		"admin_token_required", a.cfg.Admin.Token != "")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	a.server.Shutdown(sctx)
	a.hub.Shutdown(sctx)
	if err := a.ingester.Stop(sctx); err != nil {
		a.log.Error("decoding queue not drained", "err", err)
	}
	stopEngine()
	stopStore()
	wg.Wait()
	a.closeBroker()
	if runErr == nil {
		<-serveErr
	}
	return runErr
}

func (a *App) closeBroker() {
	if a.broker != nil {
		a.broker.Close()
	}
}

// pipeline hands accepted points to storage and to the panels.
type pipeline struct {
	store  *store.Store
	engine *panel.Engine
}

func (p pipeline) Accept(feedID string, points []feed.Point) {
	p.store.Write(points)
	p.engine.Observe(feedID, points)
}
