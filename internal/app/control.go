package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/cluster"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// Record kinds this package keeps in the cluster (auth keeps its own).
const (
	sharedFeed  = "feed"
	sharedAlert = "alert"
	sharedAudit = "audit"
	// reloadTopic carries a display's reload to every instance.
	reloadTopic = "reload"
)

// ClusterPath is where an instance mirrors the cluster's records.
func ClusterPath(stateDir string) string { return filepath.Join(stateDir, "cluster.json") }

// control is an instance's part in a cluster's control state
// (docs/scaling.md): the store, and the registered feeds waiting to be
// applied.
type control struct {
	store *cluster.Store

	mu      sync.Mutex
	pending map[string][]byte // registered feeds from the cluster, by ID (nil: retired)
	wake    chan struct{}
}

// joinCluster connects to the cluster's records and shares users, tokens,
// sessions, registered feeds and alert actions through them. An instance
// whose broker does not answer starts from its mirror and joins when it
// does.
func (a *App) joinCluster(tlsCfg *tls.Config) error {
	cfg := a.cfg
	st, err := cluster.Open(cluster.Options{
		URL: cfg.MQTT.URL, ClientID: cfg.MQTT.ClientID + "-cluster", Username: cfg.MQTT.Username, Password: cfg.MQTT.Password, TLS: tlsCfg,
		Prefix: "cityscreen/cluster/" + cfg.Cluster.Name, Secret: []byte(cfg.Cluster.Secret), Instance: cfg.Cluster.Instance,
		Path: ClusterPath(cfg.State.Dir), Timeout: cfg.MQTT.ConnectTimeout, Log: a.log, Reg: a.reg,
	})
	if err != nil {
		return err
	}
	if a.partials != nil {
		st.Listen(partialsTopic, a.partials.take)
	}
	st.Listen(reloadTopic, func(from string, id []byte) {
		if from != cfg.Cluster.Instance {
			a.hub.Reload(string(id))
		}
	})
	if err := st.Start(context.Background()); err != nil {
		a.log.Warn("the cluster's broker does not answer yet: starting from this instance's mirror of the cluster", "err", err)
	}
	heard := false
	for deadline := time.Now().Add(cfg.MQTT.ConnectTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if heard = st.Healthy(); heard {
			break
		}
	}
	if heard && a.partials != nil {
		a.partials.subscribed(time.Now())
	}
	if err := a.auth.Share(st, heard); err != nil {
		st.Stop()
		return err
	}
	a.control = &control{store: st, pending: map[string][]byte{}, wake: make(chan struct{}, 1)}
	if heard {
		// The first instance to join brings the feeds it registered.
		known := st.Known(sharedFeed)
		reg, _ := config.LoadRegistry(config.RegistryPath(cfg.State.Dir))
		for _, s := range reg {
			if !known[s.ID] {
				if err := st.Put(sharedFeed, s.ID, s); err != nil {
					st.Stop()
					return err
				}
			}
		}
	}
	st.Watch(sharedFeed, a.control.feedChanged)
	a.alerts.Share(alertShare{st})
	a.log.Info("joined the cluster", "cluster", cfg.Cluster.Name, "instance", cfg.Cluster.Instance, "heard", heard)
	return nil
}

// feedChanged takes a registered feed from the cluster; applyFeeds makes
// it live. It never blocks: a change made here waits for its own record.
func (c *control) feedChanged(id string, value []byte) {
	c.mu.Lock()
	c.pending[id] = value
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// applyFeeds makes the cluster's registered feeds this instance's, as
// they come, until ctx ends.
func (a *App) applyFeeds(ctx context.Context) {
	c := a.control
	for {
		a.applyPendingFeeds()
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
	}
}

// applyPendingFeeds writes the registry with every pending change and
// reloads once; a change this instance cannot take (a screen here still
// uses a feed retired elsewhere, say) is left out and logged.
func (a *App) applyPendingFeeds() {
	c := a.control
	c.mu.Lock()
	pending := c.pending
	c.pending = map[string][]byte{}
	c.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	path := config.RegistryPath(a.cfg.State.Dir)
	reg, problems := config.LoadRegistry(path)
	if len(problems) > 0 {
		a.log.Error("the feed registry cannot be read: the cluster's feeds are not applied", "problem", problems[0].String())
		return
	}
	next := reg[:0:0]
	for _, s := range reg {
		if _, changed := pending[s.ID]; !changed {
			next = append(next, s)
		}
	}
	changed := false
	for id, value := range pending {
		var cur *feed.Spec
		for i := range reg {
			if reg[i].ID == id {
				cur = &reg[i]
			}
		}
		if value == nil {
			changed = changed || cur != nil
			continue
		}
		var s feed.Spec
		if err := json.Unmarshal(value, &s); err != nil || s.ID != id {
			a.log.Error("a feed from the cluster does not decode: left out", "feed", id, "err", err)
			if cur != nil {
				next = append(next, *cur)
			}
			continue
		}
		next = append(next, s)
		changed = changed || cur == nil || !reflect.DeepEqual(*cur, s)
	}
	if !changed {
		return // this instance's own change, come back
	}
	if err := writeRegistry(path, next); err != nil {
		a.log.Error("cannot write the cluster's feeds to the registry", "err", err)
		return
	}
	if err := a.reloadLocked(); err != nil {
		a.log.Error("the cluster's feeds do not load here: the registry is put back", "err", err)
		if werr := writeRegistry(path, reg); werr == nil {
			a.reloadLocked()
		}
		return
	}
	a.log.Info("feed registry changed by the cluster", "feeds", len(pending), "registered", len(next))
}

// shareFeed tells the cluster of a registry change made here (spec nil:
// retired). Without a cluster it does nothing.
func (a *App) shareFeed(id string, spec *feed.Spec) error {
	if a.control == nil {
		return nil
	}
	if spec == nil {
		return a.control.store.Delete(sharedFeed, id)
	}
	return a.control.store.Put(sharedFeed, id, spec)
}

// clusterReady is /readyz's check of the cluster: an instance that does
// not hear it refuses credentials, so the balancer should send people
// elsewhere.
func (a *App) clusterReady(context.Context) error {
	if !a.control.store.Healthy() {
		return errors.New("does not hear the cluster: credentials cannot be verified here")
	}
	return nil
}

// alertShare keeps alert actions in the cluster's records.
type alertShare struct{ st *cluster.Store }

func (s alertShare) Put(key string, op alert.Operator) error { return s.st.Put(sharedAlert, key, op) }

func (s alertShare) Delete(key string) error { return s.st.Delete(sharedAlert, key) }

func (s alertShare) Watch(fn func(key string, op *alert.Operator)) {
	s.st.Watch(sharedAlert, func(key string, v []byte) {
		if v == nil {
			fn(key, nil)
			return
		}
		var op alert.Operator
		if json.Unmarshal(v, &op) == nil {
			fn(key, &op)
		}
	})
}

// shareAuditHead tells the cluster this instance's newest audit record,
// every interval when it changed, so that its log is verified with the
// others' as one history (cityscreen audit verify) and a log cut short
// or replaced is found.
func (a *App) shareAuditHead(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var told uint64
	for {
		if seq, hash, _ := a.audit.Head(); seq != told {
			h := audit.Head{Seq: seq, Hash: hash, Time: time.Now().UTC()}
			if err := a.control.store.Put(sharedAudit, a.cfg.Cluster.Instance, h); err == nil {
				told = seq
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// AuditHeads reads the audit heads every instance told the cluster, from
// this instance's mirror of the cluster's records.
func AuditHeads(cfg *config.Config) (map[string]audit.Head, error) {
	st, err := cluster.Open(cluster.Options{Prefix: "cityscreen/cluster/" + cfg.Cluster.Name, Secret: []byte(cfg.Cluster.Secret),
		Path: ClusterPath(cfg.State.Dir)})
	if err != nil {
		return nil, err
	}
	heads := map[string]audit.Head{}
	for _, name := range st.Keys(sharedAudit) {
		var h audit.Head
		if err := json.Unmarshal(st.Get(sharedAudit, name), &h); err == nil {
			heads[name] = h
		}
	}
	return heads, nil
}

// ReloadDisplay tells a display's pages to reload, here and, in a
// cluster, on every other instance (a display may be connected to any):
// the answer counts this instance's pages.
func (a *App) ReloadDisplay(id string) int {
	n := a.hub.Reload(id)
	if a.control != nil {
		if err := a.control.store.Send(reloadTopic, []byte(id)); err != nil {
			a.log.Warn("the other instances were not told to reload a display", "display", id, "err", err)
		}
	}
	return n
}
