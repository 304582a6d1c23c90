package feed

import (
	"cmp"
	"fmt"
	"slices"

	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Options tune how a Feed decodes and what it keeps. The zero value is usable.
type Options struct {
	// MaxPayload rejects larger payloads before decoding; 0 means 256 KiB.
	MaxPayload int
	// KeepRejected is how many rejections are kept; 0 means 1000.
	KeepRejected int
	// KeepPayload is how many bytes of a rejected payload are kept; 0 means 1024.
	KeepPayload int
	// FutureSkew is how far after receipt a payload's timestamp may be; 0
	// means one hour.
	FutureSkew time.Duration
}

// The defaults of Options, which the configuration's ingest settings
// share.
const (
	DefaultMaxPayload   = 256 << 10
	DefaultKeepRejected = 1000
)

func (o *Options) setDefaults() {
	o.MaxPayload = cmp.Or(o.MaxPayload, DefaultMaxPayload)
	o.KeepRejected = cmp.Or(o.KeepRejected, DefaultKeepRejected)
	o.KeepPayload = cmp.Or(o.KeepPayload, 1024)
	o.FutureSkew = cmp.Or(o.FutureSkew, time.Hour)
}

// earliest is the oldest timestamp a reading may carry: older ones are
// almost always a wrong time layout (seconds read as milliseconds).
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Feed is a compiled Spec with its counters and kept rejections. Its methods
// are safe for concurrent use.
type Feed struct {
	spec      Spec
	opts      Options
	topicTags []topicTag
	// tagNames and fieldNames are the spec's, sorted once: points list
	// their tags and fields in this order.
	tagNames, fieldNames []string
	// tagSpecs and fieldSpecs are the specs in the same order.
	tagSpecs   []TagSpec
	fieldSpecs []FieldSpec
	// keys, for a JSON feed whose every path is a chain of plain keys,
	// is the tree of its paths: a reading's object is then walked once
	// instead of once per path (json.go). Nil otherwise.
	keys   *keyTree
	filter string // the MQTT filter of the spec's topic
	decode func(f *Feed, topic string, payload []byte, received time.Time) ([]Point, error)
	// fixedKeys is set when every key of the feed's points (measurement,
	// tag and field names) comes from the spec and was found encodable at
	// New: lines are then encoded without checking them again, and only
	// the tag values, which come from messages, are checked.
	fixedKeys bool

	received atomic.Uint64
	bytes    atomic.Uint64
	accepted atomic.Uint64
	rejected atomic.Uint64
	lastSeen atomic.Int64 // unix nanoseconds of the newest message
	started  time.Time    // when the feed was compiled: silence counts from here
	perSec   [60]second   // messages in each of the last 60 seconds, for the rate

	mu      sync.Mutex
	rejects []Rejection // ring, len <= opts.KeepRejected
	next    int         // where the next rejection goes once the ring is full
}

// second counts the messages of one second of the last minute.
type second struct {
	unix  atomic.Int64
	count atomic.Uint64
}

type topicTag struct {
	name  string
	level int
}

// Stats are a feed's counters since the server started, and its health.
type Stats struct {
	Received uint64 `json:"received"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	// Bytes is the size of the payloads received.
	Bytes    uint64     `json:"bytes"`
	LastSeen *time.Time `json:"last_seen"`
	// RatePerSecond is the mean message rate over the last minute.
	RatePerSecond float64 `json:"rate_per_second"`
	// Silent is set when the feed declares an interval and has sent
	// nothing for longer (counting from the server's start).
	Silent bool `json:"silent"`
}

// Rejection is a message that produced no points, and why.
type Rejection struct {
	Time      time.Time `json:"time"`
	Topic     string    `json:"topic"`
	Reason    string    `json:"reason"`
	Payload   string    `json:"payload"`
	Size      int       `json:"size"`
	Truncated bool      `json:"truncated"`
}

// New compiles spec (its defaults are filled in first). It fails if the spec
// has problems; Validate lists them all.
func New(spec Spec, opts Options) (*Feed, error) {
	spec = spec.WithDefaults()
	if ps := spec.Validate(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.String()
		}
		return nil, fmt.Errorf("feed %q: %s", spec.ID, strings.Join(msgs, "; "))
	}
	opts.setDefaults()
	f := &Feed{spec: spec, opts: opts, started: time.Now(), tagNames: sortedKeys(spec.Tags), fieldNames: sortedKeys(spec.Fields),
		filter: spec.Filter()}
	for _, name := range f.tagNames {
		f.tagSpecs = append(f.tagSpecs, spec.Tags[name])
	}
	for _, name := range f.fieldNames {
		f.fieldSpecs = append(f.fieldSpecs, spec.Fields[name])
	}
	tags, _ := parseTopic(spec.Topic)
	for name, level := range tags {
		f.topicTags = append(f.topicTags, topicTag{name, level})
	}
	switch spec.Format {
	case FormatJSON:
		f.decode = decodeJSON
		f.keys = plainKeys(f)
	case FormatLine:
		f.decode = decodeLine
	case FormatNumber:
		f.decode = decodeNumber
	case FormatSenML:
		f.decode = decodeSenML
	case FormatNGSI:
		f.decode = decodeNGSI
	}
	f.fixedKeys = spec.Format != FormatLine && encodable(f)
	return f, nil
}

// The tags the decoders name themselves.
const (
	tagBaseName   = "base_name"   // SenML's base name
	TagEntityID   = "entity_id"   // an NGSI entity's id
	tagEntityType = "entity_type" // and its type
)

// fixedTagKeys are the tags the decoders name themselves.
var fixedTagKeys = []string{tagBaseName, TagEntityID, tagEntityType}

// encodable reports whether the feed's measurement and every tag and field
// name it may give its points can be written as line protocol.
func encodable(f *Feed) bool {
	var enc lineprotocol.Encoder
	enc.StartLine(f.spec.Measurement)
	names := append(append([]string{}, fixedTagKeys...), f.tagNames...)
	for _, t := range f.topicTags {
		names = append(names, t.name)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		enc.AddTag(name, "v")
	}
	for _, name := range f.fieldNames {
		enc.AddField(name, lineprotocol.BoolValue(true))
	}
	enc.EndLine(time.Time{})
	return enc.Err() == nil
}

// Inherit takes over the counters and kept rejections of the feed that
// old replaces (the same ID, a changed definition).
func (f *Feed) Inherit(old *Feed) {
	f.received.Store(old.received.Load())
	f.accepted.Store(old.accepted.Load())
	f.rejected.Store(old.rejected.Load())
	f.lastSeen.Store(old.lastSeen.Load())
	f.started = old.started
	rs := old.Rejected() // newest first
	for i := len(rs) - 1; i >= 0; i-- {
		f.keep(rs[i])
	}
}

// Spec returns the feed's definition with defaults filled in.
func (f *Feed) Spec() Spec { return f.spec }

// ID returns the feed's ID.
func (f *Feed) ID() string { return f.spec.ID }

// Decode turns one message into points without counting it. An error is
// always a *Rejection's reason: the message must not be stored.
func (f *Feed) Decode(topic string, payload []byte, received time.Time) ([]Point, error) {
	points, _, err := f.DecodeLine(topic, payload, received)
	return points, err
}

// DecodeLine is Decode that also returns the points as line protocol, one
// line each, as they are stored.
func (f *Feed) DecodeLine(topic string, payload []byte, received time.Time) ([]Point, []byte, error) {
	if len(payload) > f.opts.MaxPayload {
		return nil, nil, fmt.Errorf("payload of %d bytes is over the limit of %d bytes", len(payload), f.opts.MaxPayload)
	}
	if len(payload) == 0 {
		return nil, nil, fmt.Errorf("payload is empty")
	}
	points, err := f.decode(f, topic, payload, received)
	if err != nil {
		return nil, nil, err
	}
	if len(points) == 0 {
		return nil, nil, fmt.Errorf("payload holds no readings")
	}
	var enc lineprotocol.Encoder
	enc.SetLax(f.fixedKeys)
	// One buffer, sized for the lines: a line is about as long as the
	// payload it came from.
	enc.SetBuffer(make([]byte, 0, len(payload)+64*len(points)))
	for i := range points {
		if err := f.checkTime(points[i].Time, received); err != nil {
			return nil, nil, err
		}
		if err := f.checkCase(&points[i]); err != nil {
			return nil, nil, err
		}
		points[i].sort()
		if err := points[i].check(); err != nil {
			return nil, nil, err
		}
		if f.fixedKeys {
			if err := points[i].checkTagValues(); err != nil {
				return nil, nil, fmt.Errorf("reading %d cannot be stored: %v", i+1, err)
			}
		}
		// What line protocol cannot hold cannot be stored: reject it here
		// rather than fail after the message is taken.
		points[i].AppendLine(&enc)
		if err := enc.Err(); err != nil {
			return nil, nil, fmt.Errorf("reading %d cannot be stored: %v", i+1, err)
		}
	}
	return points, enc.Bytes(), nil
}

// Handle decodes one message, counts it and keeps it if it is rejected.
// It returns the points to store, or nil if the message was rejected.
func (f *Feed) Handle(topic string, payload []byte, received time.Time) ([]Point, error) {
	points, _, err := f.HandleLine(topic, payload, received)
	return points, err
}

// HandleLine is Handle that also returns the points as line protocol.
func (f *Feed) HandleLine(topic string, payload []byte, received time.Time) ([]Point, []byte, error) {
	f.received.Add(1)
	f.bytes.Add(uint64(len(payload)))
	f.lastSeen.Store(received.UnixNano())
	sec := received.Unix()
	slot := &f.perSec[sec%int64(len(f.perSec))]
	if old := slot.unix.Load(); old != sec && slot.unix.CompareAndSwap(old, sec) {
		slot.count.Store(0) // a new second in this slot; a race may lose a count or two
	}
	slot.count.Add(1)
	points, line, err := f.DecodeLine(topic, payload, received)
	if err != nil {
		f.Reject(topic, payload, received, err.Error())
		return nil, nil, err
	}
	f.accepted.Add(1)
	return points, line, nil
}

// Reject counts a message as rejected and keeps it with its reason.
func (f *Feed) Reject(topic string, payload []byte, at time.Time, reason string) {
	f.rejected.Add(1)
	f.Keep(topic, payload, at, reason)
}

// Keep keeps a rejected message without counting it: one rejected before
// a restart, read back from the quarantine.
func (f *Feed) Keep(topic string, payload []byte, at time.Time, reason string) {
	r := Rejection{Time: at, Topic: topic, Reason: reason, Size: len(payload)}
	keep := payload
	if len(keep) > f.opts.KeepPayload {
		keep, r.Truncated = keep[:f.opts.KeepPayload], true
	}
	r.Payload = strings.ToValidUTF8(string(keep), "\uFFFD")
	f.keep(r)
}

func (f *Feed) keep(r Rejection) {
	f.mu.Lock()
	if len(f.rejects) < f.opts.KeepRejected {
		f.rejects = append(f.rejects, r)
	} else {
		f.rejects[f.next] = r
		f.next = (f.next + 1) % len(f.rejects)
	}
	f.mu.Unlock()
}

// ClearRejected forgets the kept rejections (not the counters).
func (f *Feed) ClearRejected() {
	f.mu.Lock()
	f.rejects, f.next = nil, 0
	f.mu.Unlock()
}

// Rejected returns the kept rejections, newest first.
func (f *Feed) Rejected() []Rejection {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Rejection, 0, len(f.rejects))
	n := len(f.rejects)
	for i := 0; i < n; i++ {
		// The newest is just before f.next, which stays 0 until the ring is full.
		out = append(out, f.rejects[(f.next-1-i+2*n)%n])
	}
	return out
}

// Stats returns the feed's counters and health as of now.
func (f *Feed) Stats() Stats { return f.StatsAt(time.Now()) }

// StatsAt returns the feed's counters and health as of now, a given time.
func (f *Feed) StatsAt(now time.Time) Stats {
	s := Stats{Received: f.received.Load(), Accepted: f.accepted.Load(), Rejected: f.rejected.Load(), Bytes: f.bytes.Load()}
	last := f.started
	if ns := f.lastSeen.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		s.LastSeen = &t
		last = t
	}
	cur := now.Unix()
	var n uint64
	for i := range f.perSec {
		// The last full minute: the current second is still counting.
		if sec := f.perSec[i].unix.Load(); sec < cur && sec >= cur-int64(len(f.perSec)) {
			n += f.perSec[i].count.Load()
		}
	}
	s.RatePerSecond = float64(n) / float64(len(f.perSec))
	s.Silent = f.spec.Interval > 0 && now.Sub(last) > time.Duration(f.spec.Interval)
	return s
}

// Filter is the MQTT filter of the feed's topic: its tag levels as +.
func (f *Feed) Filter() string { return f.filter }

// Matches reports whether an MQTT topic matches the feed's filter.
func (f *Feed) Matches(topic string) bool { return MatchFilter(f.filter, topic) }

// MatchFilter reports whether topic matches the MQTT filter.
func MatchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// addTopicTags appends the tags of the topic's {name} levels.
func (f *Feed) addTopicTags(p *Point, topic string) {
	if len(f.topicTags) == 0 {
		return
	}
	for _, tt := range f.topicTags {
		if level := topicLevel(topic, tt.level); level != "" {
			p.Tags = setTag(p.Tags, tt.name, level)
		}
	}
}

// topicLevel is the topic's level i (from 0), "" past the last.
func topicLevel(topic string, i int) string {
	for ; i > 0; i-- {
		j := strings.IndexByte(topic, '/')
		if j < 0 {
			return ""
		}
		topic = topic[j+1:]
	}
	if j := strings.IndexByte(topic, '/'); j >= 0 {
		return topic[:j]
	}
	return topic
}

func setTag(tags []Tag, key, value string) []Tag {
	for i := range tags {
		if tags[i].Key == key {
			tags[i].Value = value
			return tags
		}
	}
	return append(tags, Tag{key, value})
}

func (f *Feed) checkTime(t, received time.Time) error {
	if t.Before(earliest) {
		return fmt.Errorf("timestamp %s is before 2000: check the time layout", t.UTC().Format(time.RFC3339Nano))
	}
	if t.After(received.Add(f.opts.FutureSkew)) {
		return fmt.Errorf("timestamp %s is more than %s after receipt: check the time layout or the sender's clock", t.UTC().Format(time.RFC3339Nano), f.opts.FutureSkew)
	}
	return nil
}

// checkCase refuses a case event that names no case, carries a status the
// feed does not declare, or a due time that is not RFC 3339.
func (f *Feed) checkCase(p *Point) error {
	c := f.spec.Cases
	if c == nil {
		return nil
	}
	id, status := p.Text(c.ID), p.StringField(c.Status)
	switch {
	case id == "":
		return fmt.Errorf("case event: field %s (the case ID) is empty", c.ID)
	case len(c.Statuses) > 0 && !slices.Contains(c.Statuses, status):
		return fmt.Errorf("case event: status %q is not one the feed declares (%s)", Clip(status), strings.Join(c.Statuses, ", "))
	}
	for _, tf := range [][2]string{{"due", c.Due}, {"opening", c.Opened}} {
		if v := p.StringField(tf[1]); tf[1] != "" && v != "" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return fmt.Errorf("case event: %s time %q is not RFC 3339", tf[0], Clip(v))
			}
		}
	}
	return nil
}
