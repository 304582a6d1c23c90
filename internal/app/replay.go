package app

import (
	"fmt"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/cityscreen/cityscreen/internal/quarantine"
	"github.com/cityscreen/cityscreen/internal/web"
)

// Replay runs a feed's quarantined messages through its current
// definition: those it now accepts are stored (durably, before this
// returns) and shown on the panels; the others stay rejected, with their
// new reasons, and become the feed's list of rejected messages. A message
// is decoded with the time it was first received, so a replay lands on the
// same keys in InfluxDB and replaying twice stores nothing twice. The
// quarantine itself keeps every entry: it is the record of what arrived.
func (a *App) Replay(id string) (stored, rejected int, err error) {
	f := a.ingester.Feed(id)
	if f == nil {
		return 0, 0, fmt.Errorf("%w: no feed %q", web.ErrNotFound, id)
	}
	var still []quarantine.Entry
	errc := make(chan error, 1)
	err = a.quar.Each(func(e quarantine.Entry) {
		if e.Kind != quarantine.KindRejected || e.Feed != id {
			return
		}
		if !f.Matches(e.Topic) {
			e.Reason = fmt.Sprintf("topic %q does not match the feed's topic %q", e.Topic, f.Spec().Topic)
			still = append(still, e)
			return
		}
		// Today's rules, which may protect more than when it was kept.
		e.Payload = a.ingester.Privacy().Scrub(e.Topic, e.Payload)
		points, derr := f.Decode(e.Topic, e.Payload, e.Time)
		if derr != nil {
			e.Reason = derr.Error()
			still = append(still, e)
			return
		}
		var enc lineprotocol.Encoder
		for i := range points {
			points[i].AppendLine(&enc)
		}
		a.wal.Append(enc.Bytes(), func(err error) { errc <- err })
		if werr := <-errc; werr != nil {
			e.Reason = "not stored on replay: " + werr.Error()
			still = append(still, e)
			return
		}
		a.engine.Observe(id, points)
		stored++
	})
	if err != nil {
		return stored, len(still), err
	}
	f.ClearRejected()
	for _, e := range still {
		f.Keep(e.Topic, e.Payload, e.Time, e.Reason)
	}
	a.log.Info("replayed a feed's rejected messages", "feed", id, "stored", stored, "still_rejected", len(still))
	return stored, len(still), nil
}
