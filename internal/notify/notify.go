// Package notify hands cityscreen's alerts to Prometheus Alertmanager,
// which routes, groups, silences and sends them (e-mail, WeCom, webhooks):
// cityscreen does not write its own notifier.
//
// Every Alertmanager of a list (an HA cluster) gets every alert through
// its v2 API (POST /api/v2/alerts): an active alert is sent when it fires
// and changes and re-sent every Resend with endsAt 4 Resends ahead, as
// Prometheus does, so that Alertmanager resolves it by itself only when
// cityscreen has stopped sending for that long; a cleared alert is sent
// once with its endsAt. An alert's labels name it to Alertmanager
// (alertname, screen, panel, severity, kind, escalated once escalated,
// and its group's tags); a change of severity or kind, or an escalation,
// is a new alert there, and the old one is resolved.
//
// Nothing is lost while an Alertmanager is away: the alerts, and which
// Alertmanager has been told what, are kept in a file in the state
// directory, rewritten atomically on every change, and delivered when it
// answers again, in order: an alert that fired and cleared meanwhile is
// first sent firing, then, Hold later (longer than Alertmanager's
// group_wait, so that it notifies the firing first), resolved. After a
// restart the alerts kept are still firing; those that the first
// evaluation does not raise again are resolved then (Reconcile), and the
// others are never seen to resolve and fire again.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityscreen/cityscreen/internal/alert"
	"github.com/cityscreen/cityscreen/internal/atomicfile"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Options configure a Notifier.
type Options struct {
	// URLs are the Alertmanagers, each sent every alert.
	URLs []string
	// Resend is how often active alerts are sent again; 0 means 1m.
	Resend time.Duration
	// Hold is how long after its firing was delivered a cleared alert is
	// sent resolved; 0 means 30s.
	Hold time.Duration
	// Timeout bounds one request; 0 means 10s.
	Timeout time.Duration
	// StatePath is the file the alerts are kept in.
	StatePath string
	// PublicURL, if set, is cityscreen's address for people, for the
	// alerts' links to their panels' history.
	PublicURL string
	// SilenceAcknowledged, if set, silences an acknowledged alert in
	// Alertmanager until it clears or gets worse, so that its
	// notifications stop repeating.
	SilenceAcknowledged bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// amAlert is one alert as Alertmanager knows it, with what each
// Alertmanager has been told of it.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is when it cleared, zero while it fires.
	EndsAt time.Time `json:"endsAt"`
	// Key is cityscreen's alert (screen, panel, group).
	Key string `json:"key"`
	// Fired is when each Alertmanager (by URL) was first told it fires;
	// Resolved, which were told it cleared.
	Fired    map[string]time.Time `json:"fired,omitempty"`
	Resolved map[string]bool      `json:"resolved,omitempty"`
}

// silence is a shelved alert's silence, as each Alertmanager holds it.
type silence struct {
	Matchers map[string]string `json:"matchers"`
	Until    time.Time         `json:"until"`
	By       string            `json:"by"`
	Comment  string            `json:"comment"`
	// IDs are the silence's ID in each Alertmanager (by URL) that has it;
	// Ended says it is to be expired in each.
	IDs   map[string]string `json:"ids,omitempty"`
	Ended bool              `json:"ended,omitempty"`
}

// kept is what the state file holds.
type kept struct {
	Alerts   map[string]*amAlert `json:"alerts"`
	Silences map[string]*silence `json:"silences"` // by alert key
}

// Notifier sends alerts to Alertmanager. It is safe for concurrent use.
type Notifier struct {
	opts Options
	log  *slog.Logger
	http *http.Client

	mu       sync.Mutex
	alerts   map[string]*amAlert // by fingerprint: the labels, in order
	silences map[string]*silence // by alert key
	dirty    bool
	kick     map[string]chan struct{}
	down     map[string]bool // an Alertmanager that did not answer, to log once

	sent, failed *prometheus.CounterVec
}

// New returns a notifier holding the alerts kept in opts.StatePath.
func New(opts Options, log *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if opts.Resend <= 0 {
		opts.Resend = time.Minute
	}
	if opts.Hold <= 0 {
		opts.Hold = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := &Notifier{opts: opts, log: log.With("component", "alertmanager"), http: &http.Client{Timeout: opts.Timeout},
		alerts: map[string]*amAlert{}, kick: map[string]chan struct{}{}, down: map[string]bool{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_alertmanager_alerts_sent_total", Help: "Alerts sent to an Alertmanager (each alert of each request).",
		}, []string{"alertmanager"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityscreen_alertmanager_requests_failed_total", Help: "Requests to an Alertmanager that failed; what they held is sent again.",
		}, []string{"alertmanager"}),
	}
	if reg != nil {
		reg.MustRegister(n.sent, n.failed)
	}
	for _, u := range opts.URLs {
		n.kick[u] = make(chan struct{}, 1)
	}
	data, err := os.ReadFile(opts.StatePath)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("alertmanager: %w", err)
	default:
		var k kept
		if err := json.Unmarshal(data, &k); err != nil {
			return nil, fmt.Errorf("alertmanager: %s is not the alerts cityscreen kept: %w", opts.StatePath, err)
		}
		if k.Alerts != nil {
			n.alerts = k.Alerts
		}
		n.silences = k.Silences
	}
	if n.silences == nil {
		n.silences = map[string]*silence{}
	}
	return n, nil
}

// labelName makes a tag key a Prometheus label name.
func labelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			b[i] = '_'
		}
	}
	return string(b)
}

// labelsOf are an alert's labels in Alertmanager.
func labelsOf(a *alert.Alert) map[string]string {
	l := map[string]string{}
	for k, v := range a.Tags {
		l[labelName(k)] = v
	}
	l["alertname"], l["kind"], l["severity"] = "CityscreenThreshold", "threshold", "warning"
	switch a.Status {
	case panel.StatusCrit:
		l["severity"] = "critical"
	case panel.StatusStale:
		l["alertname"], l["kind"] = "CityscreenStale", "stale"
	}
	l["screen"], l["panel"] = a.Screen, a.Panel
	if a.Escalated != nil {
		l["escalated"] = "true" // routed to the duty leader
	}
	return l
}

func fingerprint(l map[string]string) string {
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		sb.WriteString(k)
		sb.WriteByte(0)
		sb.WriteString(l[k])
		sb.WriteByte(0)
	}
	return sb.String()
}

func (n *Notifier) annotations(a *alert.Alert) map[string]string {
	what := map[panel.Status]string{panel.StatusWarn: "预警 warning", panel.StatusCrit: "严重 critical", panel.StatusStale: "数据中断 no data"}[a.Status]
	ann := map[string]string{"summary": fmt.Sprintf("%s: %s", a.Title, what)}
	var where []string
	for _, k := range slices.Sorted(maps.Keys(a.Tags)) {
		where = append(where, a.Tags[k])
	}
	if len(where) > 0 {
		ann["summary"] = fmt.Sprintf("%s (%s): %s", a.Title, strings.Join(where, " · "), what)
	}
	if a.Value != nil {
		ann["value"] = fmt.Sprintf("%g", *a.Value)
	}
	if a.Threshold != nil {
		ann["threshold"] = fmt.Sprintf("%g", *a.Threshold)
		if a.Below {
			ann["threshold"] = fmt.Sprintf("below %g", *a.Threshold)
		}
	}
	if len(a.Cases) > 0 {
		ann["cases"] = strings.Join(a.Cases, " ")
	}
	if a.AckedBy != "" {
		ann["acknowledged"] = strings.TrimSpace(a.AckedName + " " + a.AckComment)
	}
	if a.Assignee != "" {
		ann["assignee"] = a.Assignee
	}
	if n.opts.PublicURL != "" {
		q := url.Values{"screen": {a.Screen}, "panel": {a.Panel}, "from": {a.Since.Add(-time.Hour).UTC().Format(time.RFC3339)}, "to": {"now"}}
		ann["history"] = strings.TrimSuffix(n.opts.PublicURL, "/") + "/history.html?" + q.Encode()
	}
	return ann
}

// Changed takes an alert's raise, change or clear (kind as alert.Manager
// names them).
func (n *Notifier) Changed(a alert.Alert, kind string) {
	now := n.opts.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := ""
	if kind != "clear" {
		l := labelsOf(&a)
		keep = fingerprint(l)
		if x := n.alerts[keep]; x != nil && x.EndsAt.IsZero() {
			x.Annotations = n.annotations(&a) // the value moves: the next sending carries it
		} else {
			n.alerts[keep] = &amAlert{Labels: l, Annotations: n.annotations(&a), StartsAt: now, Key: a.Key()}
		}
	}
	for fp, x := range n.alerts {
		if x.Key == a.Key() && fp != keep && x.EndsAt.IsZero() {
			x.EndsAt = now // cleared, or now another severity or kind
		}
	}
	// A shelved alert is silenced, by its screen, panel and group
	// whatever its severity; the silence ends with the shelving or the
	// alert.
	m := map[string]string{}
	for k, v := range labelsOf(&a) {
		if k != "alertname" && k != "severity" && k != "kind" && k != "escalated" {
			m[k] = v
		}
	}
	sil := n.silences[a.Key()]
	switch {
	case a.ShelvedUntil != nil && kind != "clear" && (sil == nil || sil.Ended || !sil.Until.Equal(*a.ShelvedUntil)):
		if sil != nil && !sil.Ended {
			sil.Ended = true // shelved again, for another time: a new silence
			n.silences[a.Key()+"\x00"+now.String()] = sil
		}
		n.silences[a.Key()] = &silence{Matchers: m, Until: *a.ShelvedUntil, By: a.ShelvedBy, Comment: a.ShelveComment}
	case sil != nil && (a.ShelvedUntil == nil || kind == "clear"):
		sil.Ended = true
	}
	// An acknowledged alert, when so configured, is silenced until it
	// clears or gets worse (which takes the acknowledgement back).
	ackKey := a.Key() + "\x00ack"
	if as := n.silences[ackKey]; n.opts.SilenceAcknowledged && a.AckedBy != "" && kind != "clear" && (as == nil || as.Ended) {
		n.silences[ackKey] = &silence{Matchers: m, Until: now.Add(7 * 24 * time.Hour), By: a.AckedName, Comment: strings.TrimSpace("acknowledged " + a.AckComment)}
	} else if as != nil && !as.Ended && (a.AckedBy == "" || kind == "clear") {
		as.Ended = true
	}
	n.dirty = true
	n.kickAll()
}

// Reconcile resolves the alerts kept from before a restart that are not
// active now: call it once the first evaluation after the start is done.
func (n *Notifier) Reconcile(active []alert.Alert) {
	now := n.opts.Now()
	live := map[string]bool{}
	for i := range active {
		live[fingerprint(labelsOf(&active[i]))] = true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for fp, x := range n.alerts {
		if x.EndsAt.IsZero() && !live[fp] {
			x.EndsAt = now
			n.dirty = true
		}
	}
	for i := range active {
		a := &active[i]
		if fp := fingerprint(labelsOf(a)); n.alerts[fp] == nil {
			n.alerts[fp] = &amAlert{Labels: labelsOf(a), Annotations: n.annotations(a), StartsAt: a.Since, Key: a.Key()}
			n.dirty = true
		}
	}
	n.kickAll()
}

func (n *Notifier) kickAll() {
	for _, k := range n.kick {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// save writes the alerts kept, if they changed. Called with n.mu held.
func (n *Notifier) save() {
	if !n.dirty {
		return
	}
	data, err := json.Marshal(kept{Alerts: n.alerts, Silences: n.silences})
	if err == nil {
		err = atomicfile.Write(n.opts.StatePath, data)
	}
	if err != nil {
		n.log.Error("the alerts for Alertmanager could not be kept on disk: a restart may lose a transition", "err", err)
		return
	}
	n.dirty = false
}

// wire is an alert as the v2 API takes it.
type wire struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// batch is what an Alertmanager is to be sent now: every firing alert
// (and every cleared one it was never told fired, as firing), and the
// cleared ones whose firing it was told at least Hold ago, as resolved.
// Called with n.mu held.
func (n *Notifier) batch(am string, now time.Time) (out []wire, fps []string) {
	for _, fp := range slices.Sorted(maps.Keys(n.alerts)) {
		x := n.alerts[fp]
		if x.Resolved[am] {
			continue
		}
		w := wire{Labels: x.Labels, Annotations: x.Annotations, StartsAt: x.StartsAt, EndsAt: now.Add(4 * n.opts.Resend),
			GeneratorURL: x.Annotations["history"]}
		fired, told := x.Fired[am]
		if !x.EndsAt.IsZero() && told && now.Sub(fired) >= n.opts.Hold {
			w.EndsAt = x.EndsAt
		}
		out, fps = append(out, w), append(fps, fp)
	}
	return out, fps
}

// Run sends the alerts to every Alertmanager until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, am := range n.opts.URLs {
		wg.Add(1)
		go func() { defer wg.Done(); n.runOne(ctx, am) }()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			n.mu.Lock()
			n.save()
			n.mu.Unlock()
			return
		case <-t.C:
			n.mu.Lock()
			n.save()
			n.mu.Unlock()
		}
	}
}

// runOne sends to one Alertmanager: at once after a change, every Resend,
// and again a second after a failure (then less often) until it answers.
func (n *Notifier) runOne(ctx context.Context, am string) {
	wait, backoff := time.Duration(0), time.Duration(0)
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-n.kick[am]:
			timer.Stop()
		case <-timer.C:
		}
		now := n.opts.Now()
		silenced := n.syncSilences(ctx, am, now)
		n.mu.Lock()
		n.save() // what is sent is on disk first
		out, fps := n.batch(am, now)
		n.mu.Unlock()
		retry := n.opts.Resend // a silence not yet made or expired: again soon
		if !silenced {
			retry = time.Second
		}
		if len(out) == 0 {
			wait = retry
			continue
		}
		err := n.post(ctx, am, out)
		n.mu.Lock()
		if err != nil {
			n.failed.WithLabelValues(redact(am)).Inc()
			if !n.down[am] {
				n.down[am] = true
				n.log.Warn("Alertmanager does not take alerts: they are kept and sent when it does", "alertmanager", redact(am), "alerts", len(out), "err", err)
			}
			backoff = min(max(2*backoff, time.Second), n.opts.Resend) // a second, then doubling up to resend
			wait = min(backoff, retry)
			n.mu.Unlock()
			continue
		}
		backoff = 0
		if n.down[am] {
			n.down[am] = false
			n.log.Info("Alertmanager takes alerts again", "alertmanager", redact(am), "alerts", len(out))
		}
		n.sent.WithLabelValues(redact(am)).Add(float64(len(out)))
		next := retry
		for i, fp := range fps {
			x := n.alerts[fp]
			if x == nil {
				continue
			}
			if _, told := x.Fired[am]; !told {
				if x.Fired == nil {
					x.Fired = map[string]time.Time{}
				}
				x.Fired[am] = now
			}
			if out[i].EndsAt.Equal(x.EndsAt) && !x.EndsAt.IsZero() {
				if x.Resolved == nil {
					x.Resolved = map[string]bool{}
				}
				x.Resolved[am] = true
				if len(x.Resolved) == len(n.opts.URLs) {
					delete(n.alerts, fp) // every Alertmanager knows it cleared
				}
			} else if !x.EndsAt.IsZero() {
				next = min(next, n.opts.Hold-now.Sub(x.Fired[am])) // its resolve is due then
			}
			n.dirty = true
		}
		n.mu.Unlock()
		wait = max(next, 10*time.Millisecond)
	}
}

func (n *Notifier) post(ctx context.Context, am string, alerts []wire) error {
	return n.call(ctx, http.MethodPost, am, "/api/v2/alerts", alerts, nil)
}

// redact is an Alertmanager's URL without its credentials, for logs and
// metrics.
func redact(am string) string {
	u, err := url.Parse(am)
	if err != nil {
		return "(an unreadable URL)"
	}
	u.User = nil
	return u.String()
}

// syncSilences makes an Alertmanager hold the silences of the shelved
// alerts, and expire those whose shelving ended; it reports whether it
// could.
func (n *Notifier) syncSilences(ctx context.Context, am string, now time.Time) bool {
	type todo struct {
		key string
		s   silence
	}
	var work []todo
	n.mu.Lock()
	for k, s := range n.silences {
		if (s.Ended && s.IDs[am] != "") || (!s.Ended && s.IDs[am] == "" && s.Until.After(now)) {
			work = append(work, todo{k, *s})
		}
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		for k, s := range n.silences {
			if (s.Ended || !s.Until.After(now)) && !slices.ContainsFunc(n.opts.URLs, func(u string) bool { return s.IDs[u] != "" }) {
				delete(n.silences, k) // over everywhere
				n.dirty = true
			}
		}
		n.mu.Unlock()
	}()
	ok := true
	for _, w := range work {
		if w.s.Ended {
			if !w.s.Until.After(now) {
				// Over by its own time: Alertmanager has expired it.
				n.mu.Lock()
				if s := n.silences[w.key]; s != nil {
					delete(s.IDs, am)
					n.dirty = true
				}
				n.mu.Unlock()
				continue
			}
			if err := n.call(ctx, http.MethodDelete, am, "/api/v2/silence/"+url.PathEscape(w.s.IDs[am]), nil, nil); err != nil && !strings.Contains(err.Error(), "already expired") && !strings.Contains(err.Error(), "404") {
				n.log.Warn("a silence could not be expired in Alertmanager: it ends at its own time", "alertmanager", redact(am), "err", err)
				ok = false
				continue
			}
			n.mu.Lock()
			if s := n.silences[w.key]; s != nil {
				delete(s.IDs, am)
				n.dirty = true
			}
			n.mu.Unlock()
			continue
		}
		type matcher struct {
			Name    string `json:"name"`
			Value   string `json:"value"`
			IsRegex bool   `json:"isRegex"`
			IsEqual bool   `json:"isEqual"`
		}
		body := struct {
			Matchers  []matcher `json:"matchers"`
			StartsAt  time.Time `json:"startsAt"`
			EndsAt    time.Time `json:"endsAt"`
			CreatedBy string    `json:"createdBy"`
			Comment   string    `json:"comment"`
		}{StartsAt: now, EndsAt: w.s.Until, CreatedBy: "cityscreen: " + w.s.By, Comment: strings.TrimSpace("shelved in cityscreen " + w.s.Comment)}
		for _, k := range slices.Sorted(maps.Keys(w.s.Matchers)) {
			body.Matchers = append(body.Matchers, matcher{Name: k, Value: w.s.Matchers[k], IsEqual: true})
		}
		var answer struct {
			SilenceID string `json:"silenceID"`
		}
		if err := n.call(ctx, http.MethodPost, am, "/api/v2/silences", body, &answer); err != nil || answer.SilenceID == "" {
			n.log.Warn("a shelved alert's silence could not be made in Alertmanager: tried again", "alertmanager", redact(am), "err", err)
			ok = false
			continue
		}
		n.mu.Lock()
		if s := n.silences[w.key]; s != nil && !s.Ended {
			if s.IDs == nil {
				s.IDs = map[string]string{}
			}
			s.IDs[am] = answer.SilenceID
			n.dirty = true
		}
		n.mu.Unlock()
	}
	return ok
}

// call makes one request of an Alertmanager's API, with a JSON body and
// answer when given.
func (n *Notifier) call(ctx context.Context, method, am, path string, body, answer any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(am, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data[:min(len(data), 512)])))
	}
	if answer != nil {
		return json.Unmarshal(data, answer)
	}
	return nil
}
