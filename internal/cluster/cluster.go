// Package cluster keeps the control state several cityscreen instances
// share (users, tokens, sessions, registered feeds, alert actions) in the
// MQTT broker they already run, as retained QoS 1 messages under
// <prefix>/state/<kind>/<key>.
//
// Every record is sealed with AES-256-GCM under a key derived from the
// cluster's secret, its topic bound in as associated data: a client of
// the broker that lacks the secret can neither read a record (password
// hashes travel in them) nor make one, nor move one to another key. Each
// record carries a version (a hybrid logical clock and the instance that
// wrote it); the newest version of a key wins everywhere, so an older
// record replayed to the broker is ignored, and an instance that holds a
// newer one publishes it again. A deleted key is a record whose value is
// null (a tombstone), so that deletions win over older records too; the
// tombstones of a kind whose records expire (sessions) are forgotten
// after a time (ForgetDeleted).
//
// Each instance mirrors every record it holds in a file under its state
// directory, so it starts with the whole state when the broker is away,
// and puts back at the broker whatever the broker lost (a restart without
// persistence, a retained message cleared by a client).
//
// Each instance also publishes a heartbeat every Beat; Healthy reports
// whether its own last heartbeat came back through the broker within
// Grace, which is how it knows it hears every change.
//
// Store is safe for concurrent use. Watch callbacks run one at a time, in
// the order records are applied, and must not call Put or Delete.
package cluster

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// Options configure a Store.
type Options struct {
	// URL, ClientID, Username, Password and TLS reach the broker.
	URL, ClientID      string
	Username, Password string
	TLS                *tls.Config
	// Prefix is the cluster's topic, cityscreen/cluster/<name>.
	Prefix string
	// Secret is the cluster's secret, the same on every instance (at
	// least 32 bytes).
	Secret []byte
	// Instance names this instance in versions and heartbeats.
	Instance string
	// Path is the local mirror of the records.
	Path string
	// Beat is how often a heartbeat is published (default 500 ms), Grace
	// how long the link may go without its own heartbeat back before it
	// is not healthy (default 2 s).
	Beat, Grace time.Duration
	// Timeout bounds a Put's wait for the broker (default 5 s).
	Timeout time.Duration
	// Now is the clock by which deleted records are forgotten
	// (ForgetDeleted); nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	Reg prometheus.Registerer
}

// MinSecret is the shortest secret a cluster takes.
const MinSecret = 32

// Version orders the records of a key: the newer wins.
type Version struct {
	T int64  `json:"t"` // hybrid logical clock: Unix nanoseconds, at least one past the newest seen
	I string `json:"i"` // the instance that wrote it
}

// Newer reports whether v is newer than w.
func (v Version) Newer(w Version) bool {
	if v.T != w.T {
		return v.T > w.T
	}
	return v.I > w.I
}

// envelope is what is sealed.
type envelope struct {
	V     Version         `json:"v"`
	Value json.RawMessage `json:"value"` // null: deleted
}

// record is one key's newest record: its sealed payload, as published.
type record struct {
	env    envelope
	sealed []byte
}

// ErrUnavailable is a change the broker did not take in time: nothing
// is changed. Callers that must not import this package recognise it by
// its Unavailable method.
var ErrUnavailable error = unavailable{}

type unavailable struct{}

func (unavailable) Error() string {
	return "the cluster's broker cannot be reached: nothing was changed, try again"
}

// Unavailable marks the error as a service that is away (HTTP 503).
func (unavailable) Unavailable() bool { return true }

// Store holds the cluster's records.
type Store struct {
	opts   Options
	log    *slog.Logger
	aead   cipher.AEAD
	client mqtt.Client

	mu       sync.Mutex
	records  map[string]*record // by topic
	clock    int64
	watchers map[string][]func(key string, value []byte)
	heard    time.Time // when our own heartbeat last came back
	synced   bool      // the broker's retained records came in since the last connect
	seen     map[string]bool
	// forget is, by kind, how long a deleted record is kept
	// (ForgetDeleted).
	forget map[string]time.Duration
	// listeners are the non-retained messages taken (Listen).
	listeners []listener

	applyMu sync.Mutex // one apply (and its callbacks) at a time
	saveMu  sync.Mutex
	stop    chan struct{}
	done    sync.WaitGroup

	rejected  prometheus.Counter
	nRejected atomic.Int64
	applied   prometheus.Counter
	healthy   prometheus.GaugeFunc
}

// Open reads the mirror and returns a Store; Start connects it.
func Open(opts Options) (*Store, error) {
	if len(opts.Secret) < MinSecret {
		return nil, fmt.Errorf("cluster: the secret must be at least %d bytes", MinSecret)
	}
	opts.Beat = cmpOr(opts.Beat, 500*time.Millisecond)
	opts.Grace = cmpOr(opts.Grace, 2*time.Second)
	opts.Timeout = cmpOr(opts.Timeout, 5*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	key, err := hkdf.Key(sha256.New, opts.Secret, nil, "cityscreen cluster records v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Store{
		opts: opts, log: opts.Log.With("component", "cluster"), aead: aead,
		records: map[string]*record{}, watchers: map[string][]func(string, []byte){},
		seen: map[string]bool{}, stop: make(chan struct{}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_cluster_rejected_total",
			Help: "Cluster records refused: not sealed with the cluster's secret, or for another key.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityscreen_cluster_applied_total", Help: "Cluster records applied, this instance's and others'.",
		}),
	}
	s.healthy = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cityscreen_cluster_healthy", Help: "1 while this instance hears the cluster (its own heartbeat came back within the grace).",
	}, func() float64 {
		if s.Healthy() {
			return 1
		}
		return 0
	})
	if opts.Reg != nil {
		opts.Reg.MustRegister(s.rejected, s.applied, s.healthy)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// mirror is the file's form: sealed records by topic.
type mirror struct {
	Records map[string]string `json:"records"` // base64 of the sealed payload
}

func (s *Store) load() error {
	data, err := os.ReadFile(s.opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	var m mirror
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("cluster: %s: %w", s.opts.Path, err)
	}
	for topic, b64 := range m.Records {
		sealed, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		env, err := s.open(topic, sealed)
		if err != nil {
			s.log.Warn("a record in the mirror does not open: left out", "topic", topic, "err", err)
			continue
		}
		s.records[topic] = &record{env: env, sealed: sealed}
		s.clock = max(s.clock, env.V.T)
	}
	return nil
}

// save writes the mirror. Records change seldom (a person's action), so
// each change writes the whole file.
func (s *Store) save() {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	m := mirror{Records: make(map[string]string, len(s.records))}
	for topic, r := range s.records {
		m.Records[topic] = base64.StdEncoding.EncodeToString(r.sealed)
	}
	s.mu.Unlock()
	data, err := json.Marshal(m)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(s.opts.Path), 0o700); err == nil {
			err = atomicfile.Write(s.opts.Path, data)
		}
	}
	if err != nil {
		s.log.Error("cannot write the cluster's mirror", "err", err)
	}
}

// kindKey is the kind and the key of a record's topic (stateTopic's).
func (s *Store) kindKey(topic string) (kind, key string) {
	kind, key, _ = strings.Cut(strings.TrimPrefix(topic, s.opts.Prefix+"/state/"), "/")
	return kind, key
}

func (s *Store) stateTopic(kind, key string) string {
	return s.opts.Prefix + "/state/" + kind + "/" + key
}

// seal encrypts env for topic: nonce || ciphertext.
func (s *Store) seal(topic string, env envelope) ([]byte, error) {
	plain, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return s.sealBytes(topic, plain), nil
}

// sealBytes encrypts plain for topic: nonce || ciphertext, the topic
// bound in as associated data.
func (s *Store) sealBytes(topic string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(topic))
}

var errSeal = errors.New("not sealed with the cluster's secret for this topic")

// unseal is sealBytes undone, or errSeal.
func (s *Store) unseal(topic string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errSeal
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(topic))
	if err != nil {
		return nil, errSeal
	}
	return plain, nil
}

// refused counts and logs a record or message not sealed for its topic.
func (s *Store) refused(what, topic string, err error) {
	s.rejected.Inc()
	s.nRejected.Add(1)
	s.log.Warn("refused a cluster "+what, "topic", topic, "err", err)
}

func (s *Store) open(topic string, sealed []byte) (envelope, error) {
	plain, err := s.unseal(topic, sealed)
	if err != nil {
		return envelope{}, err
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return envelope{}, fmt.Errorf("a sealed record that is not JSON: %w", err)
	}
	return env, nil
}

// Watch calls fn with every record of kind applied from now on, this
// instance's and others' (value nil: deleted), and first with every record
// of kind already held.
func (s *Store) Watch(kind string, fn func(key string, value []byte)) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	s.watchers[kind] = append(s.watchers[kind], fn)
	prefix := s.stateTopic(kind, "")
	var held []*record
	var keys []string
	for topic, r := range s.records {
		if k, ok := strings.CutPrefix(topic, prefix); ok {
			held, keys = append(held, r), append(keys, k)
		}
	}
	s.mu.Unlock()
	for i, r := range held {
		fn(keys[i], valueOf(r.env))
	}
}

func valueOf(env envelope) []byte {
	if len(env.Value) == 0 || bytes.Equal(env.Value, []byte("null")) {
		return nil
	}
	return env.Value
}

// Get returns the value of a key (nil: none, or deleted).
func (s *Store) Get(kind, key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.records[s.stateTopic(kind, key)]; r != nil {
		return valueOf(r.env)
	}
	return nil
}

// Keys returns the keys of kind that hold a value.
func (s *Store) Keys(kind string) []string {
	prefix := s.stateTopic(kind, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for topic, r := range s.records {
		if k, ok := strings.CutPrefix(topic, prefix); ok && valueOf(r.env) != nil {
			out = append(out, k)
		}
	}
	return out
}

// Known returns the keys of kind the store has a record of, deleted
// ones included.
func (s *Store) Known(kind string) map[string]bool {
	prefix := s.stateTopic(kind, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for topic := range s.records {
		if k, ok := strings.CutPrefix(topic, prefix); ok {
			out[k] = true
		}
	}
	return out
}

// CheckKey reports whether key can name a record: no MQTT wildcard, no
// level separator, not empty.
func CheckKey(key string) error {
	if key == "" || strings.ContainsAny(key, "/+#\x00") || len(key) > 200 {
		return fmt.Errorf("cluster: %q cannot be a key", key)
	}
	return nil
}

// Put publishes value (any JSON; nil deletes) as kind/key and applies it
// here once the broker has it. It fails with ErrUnavailable, changing
// nothing, when the broker does not take it within Timeout.
func (s *Store) Put(kind, key string, value any) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	raw := json.RawMessage("null")
	if value != nil {
		b, err := json.Marshal(value)
		if err != nil {
			return err
		}
		raw = b
	}
	topic := s.stateTopic(kind, key)
	s.mu.Lock()
	s.clock = max(s.clock+1, time.Now().UnixNano())
	env := envelope{V: Version{T: s.clock, I: s.opts.Instance}, Value: raw}
	s.mu.Unlock()
	sealed, err := s.seal(topic, env)
	if err != nil {
		return err
	}
	if s.client == nil {
		return ErrUnavailable
	}
	tok := s.client.Publish(topic, 1, true, sealed)
	if !tok.WaitTimeout(s.opts.Timeout) || tok.Error() != nil {
		s.log.Warn("a change did not reach the cluster's broker", "kind", kind, "key", key, "err", tok.Error())
		return ErrUnavailable
	}
	s.apply(topic, env, sealed)
	return nil
}

// Delete deletes kind/key everywhere (a tombstone).
func (s *Store) Delete(kind, key string) error { return s.Put(kind, key, nil) }

// ForgetInterval is how often a Store forgets the deleted records past
// their time (ForgetDeleted).
const ForgetInterval = time.Minute

// ForgetDeleted has the deleted records of kind (tombstones) forgotten
// once their deletion is older than after: dropped from the mirror and
// cleared at the broker, so that records deleted every day (sessions) do
// not pile up. Only for a kind whose records are void by then anyway:
// with the tombstone gone, nothing wins over an old record of the key
// published again. Other kinds keep their tombstones.
func (s *Store) ForgetDeleted(kind string, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forget == nil {
		s.forget = map[string]time.Duration{}
	}
	s.forget[kind] = after
}

// expiredLocked reports whether r, held for topic, is a tombstone past
// its kind's time at now.
func (s *Store) expiredLocked(topic string, r *record, now time.Time) bool {
	if r == nil || string(r.env.Value) != "null" {
		return false
	}
	kind, _ := s.kindKey(topic)
	after, ok := s.forget[kind]
	return ok && now.UnixNano()-r.env.V.T > int64(after)
}

// dropLocked forgets topic's record.
func (s *Store) dropLocked(topic string) {
	delete(s.records, topic)
	delete(s.seen, topic)
}

// Forget drops the tombstones past their time at now and clears them at
// the broker, and returns how many it dropped. It waits for a
// connection: a tombstone forgotten here and left at the broker would
// come back. The Store runs it every ForgetInterval.
func (s *Store) Forget(now time.Time) int {
	if s.client == nil || !s.client.IsConnectionOpen() {
		return 0
	}
	s.mu.Lock()
	var gone []string
	for topic, r := range s.records {
		if s.expiredLocked(topic, r, now) {
			s.dropLocked(topic)
			gone = append(gone, topic)
		}
	}
	s.mu.Unlock()
	if len(gone) == 0 {
		return 0
	}
	s.save()
	for _, topic := range gone {
		s.client.Publish(topic, 1, true, []byte{})
	}
	s.log.Info("forgot deleted records past their time", "records", len(gone))
	return len(gone)
}

// apply keeps env for topic if it is newer than what is held, and tells
// the watchers. It reports whether it was kept.
func (s *Store) apply(topic string, env envelope, sealed []byte) bool {
	s.applyMu.Lock()
	s.mu.Lock()
	cur := s.records[topic]
	if cur != nil && !env.V.Newer(cur.env.V) {
		s.mu.Unlock()
		s.applyMu.Unlock()
		return false
	}
	s.records[topic] = &record{env: env, sealed: sealed}
	s.clock = max(s.clock, env.V.T)
	kind, key := s.kindKey(topic)
	fns := s.watchers[kind]
	s.mu.Unlock()
	s.applied.Inc()
	for _, fn := range fns {
		fn(key, valueOf(env))
	}
	s.applyMu.Unlock()
	s.save()
	return true
}

// Send publishes payload, sealed, to <prefix>/<sub>/<instance> at QoS 1,
// not retained: a message for the instances listening now (partial
// aggregates). It does not wait for the broker.
func (s *Store) Send(sub string, payload []byte) error {
	if s.client == nil {
		return ErrUnavailable
	}
	topic := s.opts.Prefix + "/" + sub + "/" + s.opts.Instance
	s.client.Publish(topic, 1, false, s.sealBytes(topic, payload))
	return nil
}

// Listen calls fn with every message Send publishes under sub, from every
// instance (this one's too), opened: a message not sealed with the
// cluster's secret for its topic is refused and counted. fn runs on the
// connection's goroutine, one message at a time, and must not block for
// long. Call it before Start.
func (s *Store) Listen(sub string, fn func(from string, payload []byte)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, listener{sub, fn})
	s.mu.Unlock()
}

type listener struct {
	sub string
	fn  func(from string, payload []byte)
}

func (s *Store) onMessage(l listener) mqtt.MessageHandler {
	prefix := s.opts.Prefix + "/" + l.sub + "/"
	return func(_ mqtt.Client, m mqtt.Message) {
		topic := m.Topic()
		plain, err := s.unseal(topic, m.Payload())
		if err != nil {
			s.refused("message", topic, err)
			return
		}
		l.fn(strings.TrimPrefix(topic, prefix), plain)
	}
}

// Start connects to the broker, takes its retained records and keeps the
// heartbeat. It returns once connected, or with an error after Timeout;
// it keeps trying in the background either way.
func (s *Store) Start(ctx context.Context) error {
	o := mqtt.NewClientOptions().AddBroker(s.opts.URL).SetClientID(s.opts.ClientID).
		SetUsername(s.opts.Username).SetPassword(s.opts.Password).SetTLSConfig(s.opts.TLS).
		// A session kept at the broker while the connection is away when
		// messages are listened to (partials), so that none is missed.
		SetCleanSession(len(s.listeners) == 0).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(2 * time.Second).
		SetKeepAlive(5 * time.Second).SetOrderMatters(true).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.log.Warn("lost the cluster's broker", "err", err)
			s.mu.Lock()
			s.synced = false
			s.mu.Unlock()
		})
	s.client = mqtt.NewClient(o)
	tok := s.client.Connect()
	s.done.Add(1)
	go s.beat()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-time.After(s.opts.Timeout):
		return fmt.Errorf("cluster: the broker did not answer within %s (still trying)", s.opts.Timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) onConnect(c mqtt.Client) {
	s.mu.Lock()
	s.seen = map[string]bool{}
	s.synced = false
	s.mu.Unlock()
	c.Subscribe(s.opts.Prefix+"/state/#", 1, s.onRecord)
	c.Subscribe(s.opts.Prefix+"/beat/"+s.opts.Instance, 0, s.onBeat)
	s.mu.Lock()
	ls := append([]listener(nil), s.listeners...)
	s.mu.Unlock()
	for _, l := range ls {
		c.Subscribe(s.opts.Prefix+"/"+l.sub+"/+", 1, s.onMessage(l))
	}
	// The broker sends its retained records at once on a subscription:
	// once our own heartbeat has come back after them, put back what the
	// broker lacks.
	go func() {
		deadline := time.Now().Add(s.opts.Timeout)
		for time.Now().Before(deadline) {
			select {
			case <-s.stop:
				return
			case <-time.After(s.opts.Beat):
			}
			s.mu.Lock()
			heard := s.heard
			s.mu.Unlock()
			if time.Since(heard) < s.opts.Beat {
				s.repair()
				return
			}
		}
	}()
}

// repair publishes every record the broker did not give back at least as
// new, after a connect.
func (s *Store) repair() {
	s.mu.Lock()
	var topics []string
	var payloads [][]byte
	for topic, r := range s.records {
		if !s.seen[topic] {
			topics, payloads = append(topics, topic), append(payloads, r.sealed)
		}
	}
	s.synced = true
	s.mu.Unlock()
	for i, topic := range topics {
		s.client.Publish(topic, 1, true, payloads[i])
	}
	if len(topics) > 0 {
		s.log.Info("put back records the cluster's broker lacked", "records", len(topics))
	}
}

func (s *Store) onRecord(_ mqtt.Client, m mqtt.Message) {
	topic := m.Topic()
	payload := m.Payload()
	if len(payload) == 0 { // cleared at the broker
		s.mu.Lock()
		expired := s.expiredLocked(topic, s.records[topic], s.opts.Now())
		if expired { // another instance forgot it: so does this one
			s.dropLocked(topic)
		}
		s.mu.Unlock()
		if expired {
			s.save()
			return
		}
		s.restore(topic, "cleared at the broker")
		return
	}
	env, err := s.open(topic, payload)
	if err != nil {
		s.refused("record", topic, err)
		s.restore(topic, "refused")
		return
	}
	s.mu.Lock()
	cur := s.records[topic]
	if cur == nil || !cur.env.V.Newer(env.V) {
		s.seen[topic] = true
	}
	s.mu.Unlock()
	if !s.apply(topic, env, payload) && cur != nil && cur.env.V.Newer(env.V) {
		s.restore(topic, "older than the one held")
	}
}

// restore publishes the held record of topic again, if there is one.
func (s *Store) restore(topic, why string) {
	s.mu.Lock()
	r := s.records[topic]
	s.mu.Unlock()
	if r == nil || s.client == nil {
		return
	}
	s.log.Warn("publishing a cluster record again", "topic", topic, "why", why)
	s.client.Publish(topic, 1, true, r.sealed)
}

func (s *Store) onBeat(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	s.heard = time.Now()
	s.mu.Unlock()
}

func (s *Store) beat() {
	defer s.done.Done()
	t := time.NewTicker(s.opts.Beat)
	defer t.Stop()
	forget := time.NewTicker(ForgetInterval)
	defer forget.Stop()
	topic := s.opts.Prefix + "/beat/" + s.opts.Instance
	for {
		select {
		case <-s.stop:
			return
		case <-forget.C:
			s.Forget(s.opts.Now())
		case <-t.C:
			if s.client.IsConnectionOpen() {
				s.client.Publish(topic, 0, false, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
			}
		}
	}
}

// Rejected is how many records were refused since Open.
func (s *Store) Rejected() int64 { return s.nRejected.Load() }

// Healthy reports whether this instance hears the cluster: its own
// heartbeat came back through the broker within Grace, and the broker's
// records came in since it last connected.
func (s *Store) Healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced && time.Since(s.heard) <= s.opts.Grace
}

// Stop disconnects.
func (s *Store) Stop() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.done.Wait()
	if s.client != nil {
		s.client.Disconnect(250)
	}
}
