package app

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/prometheus/client_golang/prometheus"
)

// buildIngest makes the ingesters the instance's role needs
// (docs/scaling.md):
//
//   - storing alone (no share group): mqtt.connections connections share
//     the stream through a group of their own, and the panels take what
//     they store;
//   - storing in a share group: the connections join the group, and an
//     instance that also serves screens takes the full stream for its
//     panels on one more connection (ClientID-screens, clean session);
//   - screens only: that one connection, and nothing stored.
func (a *App) buildIngest(brokerURL string, mqttTLS *tls.Config, feeds []*feed.Feed) {
	cfg := a.cfg
	base := ingest.Options{
		URL: brokerURL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password, TLS: mqttTLS,
		ConnectTimeout: cfg.MQTT.ConnectTimeout, MaxReconnectInterval: cfg.MQTT.MaxReconnectInterval,
		Workers: cfg.Ingest.Workers, Queue: cfg.Ingest.Queue, Privacy: cfg.PersonalData(),
	}
	stores, serves := cfg.Cluster.Stores(), cfg.Cluster.Serves()
	partials := cfg.Cluster.Partials
	fullStream := serves && (cfg.Cluster.ShareGroup != "" || !stores || partials)
	if stores {
		o := base
		o.Connections = cfg.MQTT.Connections
		o.PerFeed = cfg.MQTT.FeedConnections == config.FeedConnectionsOwn
		o.WatchDrops = cfg.MQTT.BrokerDrops == config.BrokerDropsWatch
		o.ShareGroup = cfg.Cluster.ShareGroup
		if o.ShareGroup == "" && o.Connections > 1 {
			o.ShareGroup = privateGroup(cfg.MQTT.ClientID)
		}
		sink := pipeline{wal: a.wal, quar: a.quar}
		switch {
		case partials:
			a.collector = &collector{engine: panel.New(cfg.Screens, nil, a.log, nil, panel.Options{})}
			a.collector.setCases(feeds)
			a.partialsSent = prometheus.NewCounter(prometheus.CounterOpts{
				Name: "cityscreen_partials_published_total", Help: "Partial aggregates of this instance's share published.",
			})
			a.reg.MustRegister(a.partialsSent)
			sink.engine = a.collector
		case serves && !fullStream:
			sink.engine = a.engine
		}
		a.ingester = ingest.New(o, feeds, sink, a.log, a.reg)
	}
	if fullStream {
		a.gate = newGate(a.engine)
		o := base
		o.ClientID = cfg.MQTT.ClientID + "-screens"
		o.CleanSession = true
		o.Mirror = stores
		o.Path = "screens"
		taken := feeds
		if partials {
			taken = caseFeeds(feeds) // the rest comes in partials
			a.partials = newPartialGate(a.engine, a.reg)
		}
		in := ingest.New(o, taken, panelsOnly{a.gate}, a.log, a.reg)
		if stores {
			a.screens = in
		} else {
			a.ingester = in
		}
	}
}

// servedScreens are the screens the instance computes and serves: none on
// an ingest-only instance.
func servedScreens(cfg *config.Config) []panel.ScreenSpec {
	if !cfg.Cluster.Serves() {
		return nil
	}
	return cfg.Screens
}

// privateGroup is the share group of an instance that stores alone: its
// client ID, which no other instance uses.
func privateGroup(clientID string) string {
	return "cityscreen-" + strings.NewReplacer("#", "-", "+", "-", "/", "-").Replace(clientID)
}

// ingesters are the instance's ingesters: the one that stores (or feeds a
// screens-only instance's panels) first.
func (a *App) ingesters() []*ingest.Ingester {
	if a.screens != nil {
		return []*ingest.Ingester{a.ingester, a.screens}
	}
	return []*ingest.Ingester{a.ingester}
}

// setFeeds gives every ingester the new feeds.
// setFeeds gives every ingester the feeds and the personal-data rules:
// the rules first, so that no message of a new feed is read without them.
func (a *App) setFeeds(feeds []*feed.Feed, privacy *feed.Privacy) {
	for _, in := range a.ingesters() {
		in.SetPrivacy(privacy)
		if in == a.screens || (in == a.ingester && !a.cfg.Cluster.Stores()) {
			if a.partials != nil {
				in.SetFeeds(caseFeeds(feeds)) // the rest comes in partials
				continue
			}
		}
		in.SetFeeds(feeds)
	}
	if a.collector != nil {
		a.collector.setCases(feeds)
	}
}

// mqttReady is ready while every connection of every ingester is up.
func (a *App) mqttReady(context.Context) error {
	var errs []error
	for _, in := range a.ingesters() {
		if err := in.Ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// allConnected reports whether every ingester has all its connections up.
func (a *App) allConnected() bool { return a.mqttReady(context.Background()) == nil }
