// Package config loads cityscreen's main file, its feed and screen files and
// the CITYSCREEN_* environment, strictly: unknown keys are errors, and every
// problem is reported with the file and line it concerns, not just the first.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/hub"
	"github.com/cityscreen/cityscreen/internal/ingest"
	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/store"
	"github.com/cityscreen/cityscreen/internal/wal"
)

// Config is the whole configuration: the main file's sections, then the
// feeds and screens found beside it.
type Config struct {
	HTTP   HTTP   `yaml:"http"`
	MQTT   MQTT   `yaml:"mqtt"`
	Influx Influx `yaml:"influx"`
	State  State  `yaml:"state"`
	Admin  Admin  `yaml:"admin"`
	Auth   Auth   `yaml:"auth"`
	WAL    WAL    `yaml:"wal"`
	Ingest Ingest `yaml:"ingest"`
	Hub    Hub    `yaml:"hub"`
	Log    Log    `yaml:"log"`
	// History bounds the panels' history API.
	History History `yaml:"history"`
	// Alertmanager sends the alerts on to Prometheus Alertmanager.
	Alertmanager Alertmanager `yaml:"alertmanager"`
	// Alerts sets the alerts' lifecycle.
	Alerts Alerts `yaml:"alerts"`

	Shutdown Shutdown `yaml:"shutdown"`
	Cluster  Cluster  `yaml:"cluster"`
	Debug    Debug    `yaml:"debug"`

	// Privacy binds personal data to topics for the whole server: every
	// message on a topic a rule matches is scrubbed before any feed reads
	// it, whoever defined the feed. Feeds' own private lists add to it.
	Privacy []feed.PrivacyRule `yaml:"privacy"`

	// File is the main file's path.
	File string `yaml:"-"`
	// Env is the environment the file was loaded with, for reloading.
	Env map[string]string `yaml:"-"`
	// Feeds and Screens come from feeds/*.yaml and screens/*.yaml beside
	// the main file, with their defaults filled in.
	Feeds   []feed.Spec        `yaml:"-"`
	Screens []panel.ScreenSpec `yaml:"-"`
	// Labels, from labels.yaml beside the main file, name tag values in
	// people's words on every screen (district: daoli: 道里区 / Daoli).
	Labels feed.Labels `yaml:"-"`
	// Playlists come from playlists/*.yaml beside the main file.
	Playlists []panel.Playlist `yaml:"-"`
	// Registered are the feeds registered through the API, kept in
	// feeds.json under the state directory.
	Registered []feed.Spec `yaml:"-"`
}

// FeedsByID returns every feed (AllFeeds) by its ID.
func (c *Config) FeedsByID() map[string]feed.Spec {
	out := make(map[string]feed.Spec, len(c.Feeds)+len(c.Registered))
	for _, f := range c.AllFeeds() {
		out[f.ID] = f
	}
	return out
}

// PersonalData is every personal-data rule: the main file's, then each
// feed's own.
func (c *Config) PersonalData() *feed.Privacy { return feed.NewPrivacy(c.Privacy, c.AllFeeds()) }

// PrivacyProblems reports what spec would read that the main file's rules,
// or another feed's, protect on the topics it shares with them.
func (c *Config) PrivacyProblems(spec feed.Spec) []feed.Problem {
	var others []feed.Spec
	for _, s := range c.AllFeeds() {
		if s.ID != spec.ID {
			others = append(others, s)
		}
	}
	return feed.NewPrivacy(c.Privacy, others).Check(spec)
}

// AllFeeds returns the feeds of the files, then the registered ones.
func (c *Config) AllFeeds() []feed.Spec {
	return append(append([]feed.Spec(nil), c.Feeds...), c.Registered...)
}

// HTTP configures the web server.
type HTTP struct {
	// Addr to listen on; empty means 127.0.0.1:8080.
	Addr string `yaml:"addr"`
	// TLSCert and TLSKey are PEM files; with both the server speaks HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowPlainHTTP permits plain HTTP on a non-loopback address (with a
	// warning at start). False means plain HTTP is served on loopback only.
	AllowPlainHTTP bool `yaml:"allow_plain_http"`
	// AllowedOrigins may open websockets besides the server's own origin,
	// as exact scheme://host[:port] strings. Empty means the own origin only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// PublicURL is the address people open (https://screens.example.gov.cn),
	// when the server is reached through a proxy or a name: browsers' Origin
	// must then be its origin exactly (for websockets and sign-in), whatever
	// Host a request names. Empty means the request's own Host.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are addresses or CIDR ranges (10.0.0.5, 10.0.0.0/24)
	// whose Forwarded or X-Forwarded-For header is believed: limits,
	// lockouts and the audit log then use the client's address behind
	// them. Empty means none: the connection's address is the client's.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// WebsocketsPerClient bounds each client address's open websockets;
	// 0 means 200.
	WebsocketsPerClient int `yaml:"websockets_per_client"`
}

// Proxies parses TrustedProxies (validated at load).
func (h HTTP) Proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// PublicOrigin is PublicURL's scheme://host[:port], or "".
func (h HTTP) PublicOrigin() string {
	u, err := url.Parse(h.PublicURL)
	if h.PublicURL == "" || err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// MQTT configures the broker connection.
type MQTT struct {
	// URL of the broker (tcp://, ssl://, ws://, wss://). Empty means start
	// the embedded broker on EmbeddedAddr and connect to it.
	URL string `yaml:"url"`
	// EmbeddedAddr is where the embedded broker listens, loopback only;
	// empty means 127.0.0.1:1884.
	EmbeddedAddr string `yaml:"embedded_addr"`
	// ClientID of cityscreen's connection; empty means "cityscreen-" and
	// the host name.
	ClientID string `yaml:"client_id"`
	// Username and Password for the broker; empty means none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLSCA is a PEM file of the CAs that sign the broker's certificate;
	// empty means the system's. Used with ssl://, tls://, mqtts:// and
	// wss:// URLs.
	TLSCA string `yaml:"tls_ca"`
	// TLSCert and TLSKey are a PEM client certificate and key, for brokers
	// that ask for one; empty means none.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ConnectTimeout bounds each connection attempt; 0 means 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxReconnectInterval caps the reconnect backoff; 0 means 30s.
	MaxReconnectInterval time.Duration `yaml:"max_reconnect_interval"`
	// Connections is how many connections take the stream to store it,
	// sharing it through an MQTT shared subscription so that each has its
	// own window of unacknowledged messages at the broker; 0 means 1. The
	// first has ClientID, the others ClientID-2, ClientID-3 and so on,
	// each with its persistent session.
	Connections int `yaml:"connections"`
	// FeedConnections is "own" (every feed's topic filter is taken on
	// connections of its own, ClientID.FEED: its own window and queue at
	// the broker) or "shared" (every feed on the same connections);
	// empty means own.
	FeedConnections string `yaml:"feed_connections"`
	// BrokerDrops is "watch" (follow the broker's count of the messages it
	// dropped because of its limits, Mosquitto's
	// $SYS/broker/publish/messages/dropped or the embedded broker's
	// $SYS/broker/messages/dropped, on one more connection,
	// ClientID-stats: a rise is logged as a warning and the count is the
	// metric cityscreen_broker_dropped_messages_total) or "ignore"; empty
	// means watch.
	BrokerDrops string `yaml:"broker_drops"`
}

// Values of MQTT.FeedConnections.
const (
	FeedConnectionsOwn    = "own"
	FeedConnectionsShared = "shared"
)

// Values of MQTT.BrokerDrops.
const (
	BrokerDropsWatch  = "watch"
	BrokerDropsIgnore = "ignore"
)

// Cluster configures an instance among several against one broker and one
// InfluxDB (docs/scaling.md).
type Cluster struct {
	// Role is what this instance does: "both" (store readings and serve
	// screens), "ingest" (store only) or "screens" (serve only). Empty
	// means both.
	Role string `yaml:"role"`
	// ShareGroup names the MQTT shared subscription group the instances
	// that store readings join, so that each reading is stored by one of
	// them. Empty means this instance stores alone (a group of its own
	// connections). With a group, screens take the full stream on a
	// connection of their own (ClientID-screens).
	ShareGroup string `yaml:"share_group"`
	// Secret, the same on every instance (at least 32 characters; give
	// it through CITYSCREEN_CLUSTER_SECRET_FILE), makes the instances one
	// system: users, tokens, sessions, registered feeds and alert actions
	// are kept in the broker, sealed with it, and shared (docs/scaling.md).
	// Empty: this instance keeps them to itself.
	Secret string `yaml:"secret"`
	// Name names the cluster: its records are under
	// cityscreen/cluster/<name>. Empty means "cityscreen".
	Name string `yaml:"name"`
	// Instance names this instance in the cluster's records and its audit
	// log. Empty means mqtt.client_id.
	Instance string `yaml:"instance"`
	// Partials, with Secret, has instances that store readings publish
	// their share's partial aggregates through the broker every
	// PartialInterval, and instances that serve screens build their
	// panels from every share's partials instead of decoding the full
	// stream (case feeds excepted: their books take the events). Set it
	// alike on every instance.
	Partials        bool          `yaml:"partials"`
	PartialInterval time.Duration `yaml:"partial_interval"`
}

// Shared reports whether this instance shares its control state with a
// cluster.
func (c Cluster) Shared() bool { return c.Secret != "" }

// Stores reports whether this instance stores readings.
func (c Cluster) Stores() bool { return c.Role != RoleScreens }

// Serves reports whether this instance computes panels and serves screens.
func (c Cluster) Serves() bool { return c.Role != RoleIngest }

// Instance roles.
const (
	RoleBoth    = "both"
	RoleIngest  = "ingest"
	RoleScreens = "screens"
)

// Debug configures what helps find a problem in a running server.
type Debug struct {
	// PprofAddr is where Go's profiler (/debug/pprof/) listens, on a
	// loopback address of its own. Empty means off.
	PprofAddr string `yaml:"pprof_addr"`
}

// Influx configures where readings are stored.
type Influx struct {
	// URL of InfluxDB; empty means http://127.0.0.1:8086.
	URL string `yaml:"url"`
	// Org is the InfluxDB 2.x organisation; "-" for 1.8. Empty means "-".
	Org string `yaml:"org"`
	// Bucket is the 2.x bucket, or db/rp for 1.8. Empty means city/autogen.
	Bucket string `yaml:"bucket"`
	// Token is the 2.x API token, or user:password for 1.8; empty means none.
	Token string `yaml:"token"`
	// TLSCA is a PEM file of the CAs that sign InfluxDB's certificate
	// (https:// URLs); empty means the system's.
	TLSCA string `yaml:"tls_ca"`
	// BatchSize is the most points sent in one write; 0 means 5000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a point waits to be sent; 0 means 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Timeout bounds one write; 0 means 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// State configures what the server keeps on disk.
type State struct {
	// Dir holds what the server must not lose; empty means ./state.
	Dir string `yaml:"dir"`
}

// WAL configures the write-ahead log under the state directory, where
// readings wait, durable, until InfluxDB has them.
type WAL struct {
	// MaxBytes is the most the log may hold; at the limit cityscreen stops
	// acknowledging messages and the broker keeps them. 0 means 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a new segment file starts; 0
	// means 64 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// NoFsync skips fsync after appends: faster, but a power cut can lose
	// acknowledged readings. False means every acknowledged reading is on
	// disk first.
	NoFsync bool `yaml:"no_fsync"`
	// CommitInterval is the shortest time between two fsyncs of the log:
	// under load, appends that arrive within it share one, unless none
	// has come for a millisecond. It delays an acknowledgement by at most
	// this much. 0 means 10ms.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// QuarantineMaxBytes bounds the quarantine of rejected messages and
	// refused points; beyond it the oldest go (counted, logged). 0 means
	// 256 MiB.
	QuarantineMaxBytes int64 `yaml:"quarantine_max_bytes"`
}

// Shutdown configures stopping.
type Shutdown struct {
	// Timeout is the longest a stop takes, from SIGTERM to exit; 0 means
	// 15s. What is not yet in InfluxDB by then stays in the log.
	Timeout time.Duration `yaml:"timeout"`
}

// Admin configures the bootstrap administrator. Without a token, a
// password or an administrator already in the state directory, the server
// prints a one-time setup code at start instead.
type Admin struct {
	// Token is an administrator API token accepted as "Authorization:
	// Bearer TOKEN" (and as ?token= on the websocket). At least 32
	// characters; give it through CITYSCREEN_ADMIN_TOKEN_FILE. It is never
	// stored. Empty means none.
	Token string `yaml:"token"`
	// User is the bootstrap administrator's name; empty means "admin".
	User string `yaml:"user"`
	// Password, when set, makes User an administrator with this password
	// at start (CITYSCREEN_ADMIN_PASSWORD_FILE). Empty means none.
	Password string `yaml:"password"`
}

// Auth configures sign-in, sessions and limits.
type Auth struct {
	// SessionIdle ends a sign-in session unused this long; 0 means 1h.
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionMax ends any session this long after sign-in; 0 means 12h.
	SessionMax time.Duration `yaml:"session_max"`
	// AccountAttempts failed sign-ins for one user within LockoutWindow
	// lock that user out for Lockout; 0 means 5.
	AccountAttempts int `yaml:"account_attempts"`
	// AddressAttempts failed sign-ins from one address within
	// LockoutWindow lock that address out for Lockout; 0 means 20.
	AddressAttempts int `yaml:"address_attempts"`
	// LockoutWindow; 0 means 15m.
	LockoutWindow time.Duration `yaml:"lockout_window"`
	// Lockout; 0 means 15m.
	Lockout time.Duration `yaml:"lockout"`
	// APIRate is how many API requests one client address may make per
	// second (with bursts of twice that); beyond it, 429. 0 means 50.
	APIRate int `yaml:"api_rate"`
	// AuditRetention is how long audit records are kept; 0 means 4320h
	// (180 days).
	AuditRetention time.Duration `yaml:"audit_retention"`
	// AuditKey signs the audit log's head and anchor (HMAC-SHA256), so
	// that removing its newest records, emptying or deleting it, or
	// forging where retention cut it is found. A secret of at least 32
	// characters, best from CITYSCREEN_AUTH_AUDIT_KEY_FILE, kept outside
	// the state directory. Empty means unsigned (a warning at start).
	AuditKey string `yaml:"audit_key"`
}

// Ingest configures decoding.
type Ingest struct {
	// MaxPayload rejects larger messages undecoded; 0 means 262144 (256 KiB).
	MaxPayload int `yaml:"max_payload"`
	// KeepRejected is how many rejected messages each feed keeps; 0 means 1000.
	KeepRejected int `yaml:"keep_rejected"`
	// Workers decode messages in parallel; 0 means the number of CPUs.
	Workers int `yaml:"workers"`
	// Queue is how many received messages may wait for a worker; 0 means
	// 65536. A message that finds it full is rejected as overload, kept
	// and counted.
	Queue int `yaml:"queue"`
}

// Hub configures the websocket fan-out.
type Hub struct {
	// Coalesce is how often each client gets a screen's changed panels
	// while readings keep coming (the clients take turns, a quarter every
	// quarter of it); a panel not sent for longer goes out at once when
	// it changes. 0 means 100ms.
	Coalesce time.Duration `yaml:"coalesce"`
	// ClientQueue is how many frames may wait for a slow client before it
	// is dropped; 0 means 64.
	ClientQueue int `yaml:"client_queue"`
	// WriteTimeout bounds one frame's write; 0 means 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PingInterval between pings; a client that does not answer within two
	// intervals is dropped. 0 means 20s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// ReadLimit is the largest message a client may send; 0 means 4096.
	ReadLimit int `yaml:"read_limit"`
}

// History bounds GET /api/screens/{screen}/panels/{panel}/history.
type History struct {
	// MaxPoints is the most points (groups times steps) one answer may
	// hold; a request for more is refused, naming the smallest step that
	// fits. 0 means 10,000.
	MaxPoints int `yaml:"max_points"`
	// Timeout bounds one request's queries; past it they are cancelled and
	// the request answered 504. 0 means 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Rollups is the measurement the panels' rollups are stored in; empty
	// means cityscreen_rollup. Two deployments that share a bucket give
	// theirs different names.
	Rollups string `yaml:"rollups"`
}

// Alerts sets the alerts' lifecycle (docs/alerts.md).
type Alerts struct {
	// EscalateAfter is how long an alert may stay unacknowledged before it
	// escalates (marked on every wall, and labelled escalated="true" for
	// Alertmanager to route to the duty leader); 0 means never.
	EscalateAfter time.Duration `yaml:"escalate_after"`
}

// Alertmanager hands every alert to Prometheus Alertmanager (docs/alerts.md).
type Alertmanager struct {
	// URLs of the Alertmanagers (an HA cluster: each gets every alert);
	// none means alerts stay in cityscreen.
	URLs []string `yaml:"urls"`
	// Resend is how often active alerts are sent again (each with endsAt
	// four resends ahead); 0 means 1m. Alertmanager's resolve_timeout
	// does not apply to them.
	Resend time.Duration `yaml:"resend"`
	// Hold is how long after its firing reached an Alertmanager a cleared
	// alert is sent resolved there (longer than the route's group_wait,
	// so that the firing is notified first); 0 means 30s.
	Hold time.Duration `yaml:"hold"`
	// Timeout bounds one request; 0 means 10s.
	Timeout time.Duration `yaml:"timeout"`
	// SilenceAcknowledged silences an acknowledged alert in Alertmanager
	// until it clears or gets worse, so that its notifications stop
	// repeating; false (the default) leaves them to the routes.
	SilenceAcknowledged bool `yaml:"silence_acknowledged"`
}

// Log configures logging.
type Log struct {
	// Level: debug, info, warn or error; empty means info.
	Level string `yaml:"level"`
	// Format: text or json; empty means text.
	Format string `yaml:"format"`
}

// SetDefaults fills in every empty setting of the main file. It is the one
// place defaults live.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HTTP.Addr, "127.0.0.1:8080")
	defInt(&c.HTTP.WebsocketsPerClient, 200)
	def(&c.MQTT.EmbeddedAddr, "127.0.0.1:1884")
	def(&c.MQTT.ClientID, defaultClientID())
	defDur(&c.MQTT.ConnectTimeout, ingest.DefaultConnectTimeout)
	defDur(&c.MQTT.MaxReconnectInterval, ingest.DefaultMaxReconnectInterval)
	defInt(&c.MQTT.Connections, ingest.DefaultConnections)
	def(&c.MQTT.FeedConnections, FeedConnectionsOwn)
	def(&c.MQTT.BrokerDrops, BrokerDropsWatch)
	def(&c.Cluster.Role, RoleBoth)
	def(&c.Cluster.Name, "cityscreen")
	defDur(&c.Cluster.PartialInterval, 100*time.Millisecond)
	def(&c.Cluster.Instance, c.MQTT.ClientID)
	def(&c.Influx.URL, "http://127.0.0.1:8086")
	def(&c.Influx.Org, "-")
	def(&c.Influx.Bucket, "city/autogen")
	defInt(&c.Influx.BatchSize, store.DefaultBatchSize)
	defDur(&c.Influx.FlushInterval, store.DefaultFlushInterval)
	defDur(&c.Influx.Timeout, store.DefaultTimeout)
	def(&c.State.Dir, "state")
	defInt64 := func(n *int64, v int64) {
		if *n == 0 {
			*n = v
		}
	}
	defInt64(&c.WAL.MaxBytes, wal.DefaultMaxBytes)
	defInt64(&c.WAL.SegmentBytes, wal.DefaultSegmentBytes)
	defInt64(&c.WAL.QuarantineMaxBytes, 256<<20)
	defDur(&c.WAL.CommitInterval, 10*time.Millisecond)
	defDur(&c.Shutdown.Timeout, 15*time.Second)
	defInt(&c.Ingest.MaxPayload, feed.DefaultMaxPayload)
	defInt(&c.Ingest.KeepRejected, feed.DefaultKeepRejected)
	defInt(&c.Ingest.Queue, ingest.DefaultQueue)
	defDur(&c.Hub.Coalesce, panel.DefaultCoalesce)
	defInt(&c.Hub.ClientQueue, hub.DefaultClientQueue)
	defDur(&c.Hub.WriteTimeout, hub.DefaultWriteTimeout)
	defDur(&c.Hub.PingInterval, hub.DefaultPingInterval)
	defInt(&c.Hub.ReadLimit, hub.DefaultReadLimit)
	defInt(&c.History.MaxPoints, 10_000)
	defDur(&c.History.Timeout, 10*time.Second)
	def(&c.History.Rollups, "cityscreen_rollup")
	defDur(&c.Alertmanager.Resend, time.Minute)
	defDur(&c.Alertmanager.Hold, 30*time.Second)
	defDur(&c.Alertmanager.Timeout, 10*time.Second)
	def(&c.Admin.User, "admin")
	defDur(&c.Auth.SessionIdle, time.Hour)
	defDur(&c.Auth.SessionMax, 12*time.Hour)
	defInt(&c.Auth.AccountAttempts, 5)
	defInt(&c.Auth.AddressAttempts, 20)
	defDur(&c.Auth.LockoutWindow, 15*time.Minute)
	defDur(&c.Auth.Lockout, 15*time.Minute)
	defInt(&c.Auth.APIRate, 50)
	defDur(&c.Auth.AuditRetention, 180*24*time.Hour)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
}

// validate reports every problem of the main file's settings, keyed by
// their dotted YAML path.
func (c *Config) validate() []feed.Problem {
	var ps []feed.Problem
	add := func(key, f string, a ...any) { ps = append(ps, feed.Problem{Key: key, Msg: fmt.Sprintf(f, a...)}) }
	ps = append(ps, feed.CheckPrivacy(c.Privacy)...)
	for i, p := range c.HTTP.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			add(fmt.Sprintf("http.trusted_proxies.%d", i), "%q is not an address or a CIDR range (10.0.0.5, 10.0.0.0/24)", p)
		}
	}
	if c.HTTP.PublicURL != "" {
		if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("http.public_url", "%q is not an http:// or https:// address", c.HTTP.PublicURL)
		}
	}
	if c.HTTP.WebsocketsPerClient < 0 {
		add("http.websockets_per_client", "must not be negative")
	}
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	if err != nil {
		add("http.addr", "%q is not host:port: %v", c.HTTP.Addr, err)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		add("http.tls_cert", "tls_cert and tls_key must be given together")
	}
	if err == nil && c.HTTP.TLSCert == "" && !c.HTTP.AllowPlainHTTP && !IsLoopback(host) {
		add("http.addr", "%q is not a loopback address: give tls_cert and tls_key, or set allow_plain_http", c.HTTP.Addr)
	}
	for i, u := range c.Alertmanager.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			add(fmt.Sprintf("alertmanager.urls.%d", i), "%q is not an http:// or https:// URL", u)
		}
	}
	for i, o := range c.HTTP.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			add(fmt.Sprintf("http.allowed_origins.%d", i), "%q is not an origin like https://wall.example.gov.cn", o)
		}
	}
	if c.MQTT.URL == "" {
		host, _, err := net.SplitHostPort(c.MQTT.EmbeddedAddr)
		switch {
		case err != nil:
			add("mqtt.embedded_addr", "%q is not host:port: %v", c.MQTT.EmbeddedAddr, err)
		case !IsLoopback(host):
			add("mqtt.embedded_addr", "%q: the embedded broker listens on loopback only", c.MQTT.EmbeddedAddr)
		}
	} else if u, err := url.Parse(c.MQTT.URL); err != nil || u.Host == "" {
		add("mqtt.url", "%q is not a broker URL like tcp://host:1883", c.MQTT.URL)
	} else {
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			add("mqtt.url", "scheme %q: want tcp, ssl, ws or wss", u.Scheme)
		}
	}
	if k := c.Auth.AuditKey; k != "" && len(k) < 32 {
		add("auth.audit_key", "must be at least 32 characters (openssl rand -hex 32)")
	}
	if t := c.Admin.Token; t != "" && (len(t) < 32 || strings.TrimSpace(t) != t) {
		add("admin.token", "must be at least 32 characters without surrounding spaces (openssl rand -hex 32)")
	}
	if (c.MQTT.TLSCert == "") != (c.MQTT.TLSKey == "") {
		add("mqtt.tls_cert", "tls_cert and tls_key must be given together")
	}
	if u, err := url.Parse(c.MQTT.URL); err == nil && c.MQTT.URL != "" && (c.MQTT.TLSCA != "" || c.MQTT.TLSCert != "") {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "wss":
		default:
			add("mqtt.url", "TLS files are given but %q is not a TLS URL (ssl://, tls://, mqtts://, wss://)", u.Scheme+"://")
		}
	}
	for _, kf := range [][2]string{{"http.tls_cert", c.HTTP.TLSCert}, {"http.tls_key", c.HTTP.TLSKey}, {"mqtt.tls_ca", c.MQTT.TLSCA},
		{"mqtt.tls_cert", c.MQTT.TLSCert}, {"mqtt.tls_key", c.MQTT.TLSKey}, {"influx.tls_ca", c.Influx.TLSCA}} {
		key, file := kf[0], kf[1]
		if file == "" {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			add(key, "%v", err)
		}
	}
	if p := c.Admin.Password; p != "" && len([]rune(p)) < 12 {
		add("admin.password", "must be at least 12 characters")
	}
	if c.Auth.AccountAttempts < 0 || c.Auth.AddressAttempts < 0 || c.Auth.APIRate < 0 {
		add("auth", "attempts and rates must not be negative")
	}
	if strings.ContainsAny(c.MQTT.ClientID, "#+/") {
		add("mqtt.client_id", "must not contain #, + or /")
	}
	if u, err := url.Parse(c.Influx.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("influx.url", "%q is not an http:// or https:// URL", c.Influx.URL)
	}
	positive := map[string]int{
		"influx.batch_size":  c.Influx.BatchSize,
		"ingest.max_payload": c.Ingest.MaxPayload, "ingest.keep_rejected": c.Ingest.KeepRejected,
		"ingest.queue": c.Ingest.Queue, "hub.client_queue": c.Hub.ClientQueue, "hub.read_limit": c.Hub.ReadLimit,
		"history.max_points": c.History.MaxPoints,
	}
	for _, key := range sortedKeys(positive) {
		if positive[key] < 0 {
			add(key, "must not be negative")
		}
	}
	if c.WAL.MaxBytes < 0 || c.WAL.SegmentBytes < 0 || c.WAL.QuarantineMaxBytes < 0 {
		add("wal", "sizes must not be negative")
	} else if c.WAL.SegmentBytes > c.WAL.MaxBytes/2 {
		// The active segment is never deleted: the rest of the log must
		// have room beside it.
		add("wal.segment_bytes", "%d is above half of max_bytes (%d)", c.WAL.SegmentBytes, c.WAL.MaxBytes)
	}
	if c.Ingest.Workers < 0 {
		add("ingest.workers", "must not be negative")
	}
	durations := map[string]time.Duration{
		"mqtt.connect_timeout": c.MQTT.ConnectTimeout, "mqtt.max_reconnect_interval": c.MQTT.MaxReconnectInterval,
		"influx.flush_interval": c.Influx.FlushInterval, "influx.timeout": c.Influx.Timeout,
		"hub.coalesce": c.Hub.Coalesce, "hub.write_timeout": c.Hub.WriteTimeout, "hub.ping_interval": c.Hub.PingInterval,
		"shutdown.timeout": c.Shutdown.Timeout, "wal.commit_interval": c.WAL.CommitInterval,
		"history.timeout": c.History.Timeout, "alertmanager.resend": c.Alertmanager.Resend, "alerts.escalate_after": c.Alerts.EscalateAfter,
		"alertmanager.hold": c.Alertmanager.Hold, "alertmanager.timeout": c.Alertmanager.Timeout,
		"cluster.partial_interval": c.Cluster.PartialInterval,
	}
	for _, key := range sortedKeys(durations) {
		if durations[key] < 0 {
			add(key, "must not be negative")
		}
	}
	switch c.Cluster.Role {
	case RoleBoth, RoleIngest, RoleScreens:
	default:
		add("cluster.role", "%q: want both, ingest or screens", c.Cluster.Role)
	}
	if k := c.Cluster.Secret; k != "" && len(k) < 32 {
		add("cluster.secret", "is %d characters: want at least 32 (CITYSCREEN_CLUSTER_SECRET_FILE)", len(k))
	}
	for _, kv := range [][2]string{{"cluster.name", c.Cluster.Name}, {"cluster.instance", c.Cluster.Instance}} {
		if v := kv[1]; strings.ContainsAny(v, "#+/\x00") || strings.TrimSpace(v) != v {
			add(kv[0], "%q: must not contain #, + or / or surrounding spaces", v)
		}
	}
	if c.Cluster.Partials && !c.Cluster.Shared() {
		add("cluster.partials", "needs cluster.secret: partials are sealed with it, so that no client of the broker can put numbers on the screens")
	}
	if c.Cluster.Shared() && c.MQTT.URL == "" {
		add("cluster.secret", "a cluster shares a broker: set mqtt.url (the embedded broker is this instance's own)")
	}
	if g := c.Cluster.ShareGroup; g != "" && (strings.ContainsAny(g, "#+/") || strings.TrimSpace(g) != g) {
		add("cluster.share_group", "%q: a group name must not contain #, + or / or surrounding spaces", g)
	}
	if c.MQTT.Connections < 0 || c.MQTT.Connections > 64 {
		add("mqtt.connections", "%d: want 1 to 64", c.MQTT.Connections)
	}
	if d := c.MQTT.BrokerDrops; d != BrokerDropsWatch && d != BrokerDropsIgnore {
		add("mqtt.broker_drops", "%q: want watch or ignore", d)
	}
	if f := c.MQTT.FeedConnections; f != FeedConnectionsOwn && f != FeedConnectionsShared {
		add("mqtt.feed_connections", "%q: want own or shared", f)
	}
	if a := c.Debug.PprofAddr; a != "" {
		host, _, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			add("debug.pprof_addr", "%q is not host:port: %v", a, err)
		case !IsLoopback(host):
			add("debug.pprof_addr", "%q: the profiler listens on loopback only (reach it through SSH)", a)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q: want text or json", c.Log.Format)
	}
	return ps
}

// IsLoopback reports whether host is a loopback address or localhost.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
