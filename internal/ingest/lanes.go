package ingest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// lane is the connections that take some feeds' messages: every feed's, or
// with PerFeed those of the feeds with one topic filter. A message that
// arrives on a lane goes to the lane's feeds only, so that a topic two
// lanes' filters both match is taken once for each feed.
type lane struct {
	// name is the smallest ID among its feeds (SetFeeds replaces a lane
	// when that changes); "" for the lane of every feed.
	name  string
	key   string // its topic filter; "" for the lane of every feed
	feeds atomic.Pointer[[]*feed.Feed]
	conns []*conn
	// pending counts the messages that arrived on it and are not settled
	// yet; failed those settled without being made durable (left
	// unacknowledged for the broker to deliver again).
	pending, failed atomic.Int64
}

func (l *lane) Feeds() []*feed.Feed { return *l.feeds.Load() }

// group is the feeds of one lane.
type group struct {
	name, key string // as the lane's
	feeds     []*feed.Feed
}

// layout groups the feeds into lanes, in order of name: one lane of every
// feed, or per feed one per distinct topic filter.
func layout(feeds []*feed.Feed, perFeed bool) []group {
	if !perFeed {
		return []group{{feeds: feeds}}
	}
	byFilter := map[string]*group{}
	var groups []*group
	for _, f := range feeds {
		g := byFilter[f.Filter()]
		if g == nil {
			g = &group{name: f.ID(), key: f.Filter()}
			byFilter[f.Filter()] = g
			groups = append(groups, g)
		}
		g.name = min(g.name, f.ID())
		g.feeds = append(g.feeds, f)
	}
	out := make([]group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b group) int { return strings.Compare(a.name, b.name) })
	return out
}

// newLane makes a lane's connections, not yet connected.
func (in *Ingester) newLane(g group) *lane {
	l := &lane{name: g.name, key: g.key}
	l.feeds.Store(&g.feeds)
	for i := 1; i <= in.opts.Connections; i++ {
		l.conns = append(l.conns, newConn(in.connID(g.name, i), l))
	}
	return l
}

// connID is the client ID of a lane's i-th connection (from 1).
func (in *Ingester) connID(lane string, i int) string {
	id, sep := in.opts.ClientID, "-"
	if lane != "" {
		id, sep = id+"."+lane, "."
	}
	if i > 1 {
		id += sep + strconv.Itoa(i)
	}
	return id
}

// lanesNow returns the ingester's lanes.
func (in *Ingester) lanesNow() []*lane { return *in.lanes.Load() }

// retireOther ends the sessions that the other layout of connections
// (PerFeed or not; cityscreen's before PerFeed was the one of every feed)
// may have left at the broker for the feeds. Once the lanes are up, it
// takes each such session over, unsubscribes it from the feeds' filters,
// takes the messages it kept (those of the time cityscreen was away)
// until none has come for a second, and then ends it with a clean
// session. Without this, a change of layout would leave those messages
// untaken and the broker queueing for a session nobody uses.
func (in *Ingester) retireOther(others []group) {
	for !in.Connected() {
		if in.isStopping() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, g := range others {
		for i := 1; i <= in.opts.Connections; i++ {
			if in.isStopping() {
				return
			}
			in.retire(in.connID(g.name, i), g.feeds)
		}
	}
}

// others returns the lanes whose sessions retireOther ends: those of the
// other layout and, with PerFeed, those named after a feed that names no
// lane (it shares a filter with a feed of a smaller ID that came later).
func (in *Ingester) others() []group {
	groups := layout(in.Feeds(), !in.opts.PerFeed)
	if !in.opts.PerFeed {
		return groups
	}
	named := map[string]bool{}
	for _, l := range in.lanesNow() {
		named[l.name] = true
	}
	for _, l := range in.lanesNow() {
		for _, f := range l.Feeds() {
			if !named[f.ID()] {
				groups = append(groups, group{name: f.ID(), key: l.key, feeds: l.Feeds()})
			}
		}
	}
	return groups
}

// retireQuiet is how long a retired session must bring nothing before it
// is ended.
const retireQuiet = time.Second

// retire empties and ends the session of the client ID (retireOther),
// whose messages are the feeds'.
func (in *Ingester) retire(id string, feeds []*feed.Feed) {
	for _, c := range in.conns() {
		if c.id == id {
			return // a lane's again (SetFeeds): taking it over would cut it off
		}
	}
	l := &lane{}
	l.feeds.Store(&feeds)
	c := newConn(id, l)
	var last atomic.Int64
	var taken atomic.Int64
	o := in.clientOptions(c)
	take := c.receive
	c.receive = func(client mqtt.Client, m mqtt.Message) {
		taken.Add(1)
		last.Store(time.Now().UnixNano())
		take(client, m)
	}
	o.SetDefaultPublishHandler(c.receive).SetCleanSession(false)
	c.client = in.opts.NewClient(o)
	in.lanesMu.Lock()
	in.addRetired(c)
	in.lanesMu.Unlock()
	tok := c.client.Connect()
	if !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		in.log.Warn("could not end the session of an earlier layout; tried again at the next start", "client_id", id, "err", tok.Error())
		return
	}
	if in.isStopping() {
		c.close()
		return
	}
	if ct, ok := tok.(*mqtt.ConnectToken); !ok || !ct.SessionPresent() { // none kept, or a client that cannot tell
		c.close()
		in.endSession(id)
		return
	}
	filters := in.filtersOf(feeds)
	for _, f := range feeds { // with a share group, and without one as well
		filters[f.Filter()] = 1
	}
	if len(filters) > 0 {
		if tok := c.client.Unsubscribe(slices.Collect(maps.Keys(filters))...); !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
			in.log.Warn("could not unsubscribe the session of an earlier layout", "client_id", id, "err", tok.Error())
		}
	}
	last.Store(time.Now().UnixNano())
	for time.Since(time.Unix(0, last.Load())) < retireQuiet && !in.isStopping() {
		time.Sleep(100 * time.Millisecond)
	}
	if !in.settled(l) {
		c.close()
		return // the session ends at a later start
	}
	c.close()
	in.endSession(id)
	in.log.Info("ended the session of an earlier layout of connections", "client_id", id, "messages_taken", taken.Load())
}

// settled waits until every message that arrived on the lane is settled,
// and reports whether all were made durable (and so acknowledged): only
// then may the lane's sessions be ended. It reports false at once when
// the ingester stops.
func (in *Ingester) settled(l *lane) bool {
	for l.pending.Load() > 0 {
		if in.isStopping() {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := l.failed.Load(); n > 0 {
		in.log.Warn("messages of a session being ended could not be made durable: the session is kept for the broker to deliver them again", "lane", l.name, "messages", n)
		return false
	}
	return !in.isStopping()
}

// endSession connects under the client ID with a clean session, which ends
// the session the broker kept for it.
func (in *Ingester) endSession(id string) {
	client := in.opts.NewClient(in.brokerOptions(id).SetCleanSession(true))
	if tok := client.Connect(); !tok.WaitTimeout(in.opts.ConnectTimeout) || tok.Error() != nil {
		in.log.Warn("could not end the session of an earlier layout; tried again at the next start", "client_id", id, "err", tok.Error())
		return
	}
	client.Disconnect(250) // time to send DISCONNECT, or the broker logs an abrupt end
}

// endLane ends a lane no feed uses by its name any more: once after, the
// lane that takes its filter over (if any), is up, it unsubscribes the
// lane's connections from filters, lets what they were sent meanwhile
// arrive (retireQuiet), closes them and ends their sessions.
func (in *Ingester) endLane(l *lane, filters []string, after *lane) {
	for after != nil && !laneUp(after) {
		if in.isStopping() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(filters) > 0 {
		in.resubscribe(l, nil, filters)
	}
	end := true
	if after != nil { // its messages are wanted: all of them durable first
		time.Sleep(retireQuiet)
		end = in.settled(l)
	}
	for _, c := range l.conns {
		c.close()
		if end && !in.isStopping() {
			in.endSession(c.id)
		}
	}
	in.log.Info("closed the connections of a feed's filter", "lane", l.name, "taken_over_by", laneName(after))
}

func laneUp(l *lane) bool {
	for _, c := range l.conns {
		if !c.connected.Load() {
			return false
		}
	}
	return true
}

func laneName(l *lane) string {
	if l == nil {
		return ""
	}
	return l.name
}
