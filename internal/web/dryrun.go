package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// maxDryRunBody bounds a dry run's request: a definition and one payload.
const maxDryRunBody = 1 << 20

type dryRunRequest struct {
	Feed    feed.Spec `json:"feed"`
	Topic   string    `json:"topic"`
	Payload string    `json:"payload"`
}

type dryRunPoint struct {
	Measurement string            `json:"measurement"`
	Tags        map[string]string `json:"tags"`
	Fields      map[string]any    `json:"fields"`
	// Types are each field's type as stored: int, float, unsigned, bool
	// or string (a JSON number does not say whether it is 42 or 42.0).
	Types map[string]string `json:"types"`
	// Line is the point as it is written to InfluxDB.
	Line string    `json:"line"`
	Time time.Time `json:"time"`
}

type dryRunReject struct {
	Reason string `json:"reason"`
}

// dryRun answers POST /api/feeds/test: what a definition would make of a
// payload on a topic, without storing or counting anything.
func (s *server) dryRun(w http.ResponseWriter, r *http.Request) {
	var req dryRunRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDryRunBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is over %d bytes", maxDryRunBody))
			return
		}
		writeError(w, http.StatusBadRequest, "the body must be {\"feed\": {...}, \"topic\": \"...\", \"payload\": \"...\"}: "+err.Error())
		return
	}
	spec := req.Feed.WithDefaults()
	if ps := spec.Validate(); len(ps) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the feed definition has problems", "problems": ps})
		return
	}
	f, err := feed.New(spec, feed.Options{})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := struct {
		Points   []dryRunPoint  `json:"points"`
		Rejected []dryRunReject `json:"rejected"`
	}{Points: []dryRunPoint{}, Rejected: []dryRunReject{}}
	if !f.Matches(req.Topic) {
		out.Rejected = append(out.Rejected, dryRunReject{fmt.Sprintf("topic %q does not match the feed's topic %q", req.Topic, spec.Topic)})
		writeJSON(w, http.StatusOK, out)
		return
	}
	payload := feed.NewPrivacy(nil, []feed.Spec{spec}).Scrub(req.Topic, []byte(req.Payload))
	if s.Privacy != nil {
		payload = s.Privacy().Scrub(req.Topic, payload)
	}
	points, err := f.Decode(req.Topic, payload, time.Now())
	if err != nil {
		out.Rejected = append(out.Rejected, dryRunReject{err.Error()})
	}
	for _, p := range points {
		dp := dryRunPoint{Measurement: p.Measurement, Tags: map[string]string{}, Fields: map[string]any{}, Types: map[string]string{}, Time: p.Time.UTC()}
		for _, t := range p.Tags {
			dp.Tags[t.Key] = t.Value
		}
		for _, fl := range p.Fields {
			dp.Fields[fl.Key] = fl.Value.Interface()
			dp.Types[fl.Key] = kindNames[fl.Value.Kind()]
		}
		var enc lineprotocol.Encoder
		p.AppendLine(&enc)
		dp.Line = strings.TrimSuffix(string(enc.Bytes()), "\n")
		out.Points = append(out.Points, dp)
	}
	writeJSON(w, http.StatusOK, out)
}

// kindNames are the field types a dry run names.
var kindNames = map[lineprotocol.ValueKind]string{
	lineprotocol.Int: "int", lineprotocol.Float: "float", lineprotocol.Uint: "unsigned",
	lineprotocol.Bool: "bool", lineprotocol.String: "string",
}
