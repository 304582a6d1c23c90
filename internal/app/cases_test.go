package app

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

// TestCaseFeed: a hotline case feed against the real broker and InfluxDB.
// Open cases count by district; a heating case passes its 3 s time limit
// with no message and its department's overdue panel goes critical; a
// case closed in time makes the on-time rate; an undeclared status is
// rejected with its reason. After a restart the cases come back from the
// state directory (with InfluxDB or without) or, without it, from
// InfluxDB: the same counts.
func TestCaseFeed(t *testing.T) {
	site, measurement := caseSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": t.TempDir()})
	a, stop := start(t, site, env)
	pub := publisher(t, broker)
	now := time.Now().UTC()
	send := func(district, id, status, dept, category string, at time.Time) {
		sendCase(t, pub, site, district, id, status, dept, category, at)
	}
	send("daoli", "HRB-1", "received", "housing", "heating", now)
	send("nangang", "HRB-2", "received", "roads", "roads", now.Add(time.Millisecond))
	send("nangang", "HRB-2", "dispatched", "roads", "roads", now.Add(2*time.Millisecond))
	send("nangang", "HRB-3", "received", "roads", "roads", now.Add(3*time.Millisecond))
	send("nangang", "HRB-3", "closed", "roads", "roads", now.Add(4*time.Millisecond))
	send("nangang", "HRB-2", "received", "roads", "roads", now.Add(time.Millisecond)) // a duplicate
	send("nangang", "HRB-4", "lost", "roads", "roads", now.Add(5*time.Millisecond))   // not a status of the feed

	want := map[string]string{
		"open": "2", "open-by-district": "[{map[district:daoli] 1} {map[district:nangang] 1}]", "dispatched": "1",
		"due-soon": "1", "on-time": "100", "late": "1", "overdue": "[{map[department:housing] 1} {map[department:roads] 0}]",
	}
	check := func(a *App, when string, skip ...string) {
		t.Helper()
		var got map[string]string
		ok := false
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(100 * time.Millisecond) {
			got = values(t, a)
			ok = true
			for id, v := range want {
				ok = ok && (got[id] == v || slices.Contains(skip, id))
			}
		}
		if !ok {
			t.Fatalf("%s: panels %v, want %v", when, got, want)
		}
	}
	// HRB-1 passes its deadline 3 s after it was received, with no
	// message: overdue, and its department's panel critical.
	check(a, "after the heating case's deadline")
	// The department's alert names its overdue case.
	var alerts []struct {
		Panel, Status string
		Tags          map[string]string
		Cases         []string
	}
	getJSON(t, a.URL()+"api/alerts", &alerts)
	if got := fmt.Sprint(alerts); !strings.Contains(got, "{overdue crit map[department:housing] [HRB-1]}") {
		t.Errorf("alerts: %v", got)
	}
	_, rejected := authed(t, a, testToken)("GET", "api/feeds/requests/rejected", "")
	if !strings.Contains(rejected, `status \"lost\" is not one the feed declares`) {
		t.Errorf("the rejected list: %s", rejected)
	}
	// An event for a case never opened changes nothing, and says why once
	// it has waited for its opening in vain.
	send("nangang", "HRB-9", "dispatched", "roads", "roads", now.Add(6*time.Millisecond))
	testkit.WaitFor(t, 20*time.Second, func() bool {
		_, body := authed(t, a, testToken)("GET", "api/feeds/requests/refusals", "")
		return strings.Contains(body, `"case":"HRB-9"`) && strings.Contains(body, "no event opened it")
	})
	check(a, "with an event for a case never opened")
	testkit.WaitFor(t, 10*time.Second, func() bool { return countInflux(t, measurement) == 12 }) // 6 events (the duplicate is the same point) of 2 fields
	// A case's events are its own, oldest first: HRB-2's two.
	status, body := authed(t, a, testToken)("GET", "api/cases/requests/HRB-2", "")
	var hrb2 struct {
		Events []struct{ Fields map[string]any }
	}
	if err := json.Unmarshal([]byte(body), &hrb2); err != nil || status != 200 {
		t.Fatalf("HRB-2: %d %s", status, body)
	}
	var events []string
	for _, ev := range hrb2.Events {
		events = append(events, fmt.Sprint(ev.Fields["case"], " ", ev.Fields["status"]))
	}
	if want := []string{"HRB-2 received", "HRB-2 dispatched"}; !slices.Equal(events, want) {
		t.Errorf("HRB-2's events %q, want %q", events, want)
	}
	pub.Disconnect(100)
	stop()

	// The book comes back from the state directory, and the on-time rate
	// from InfluxDB, the closing recounted as it was.
	a, stop = start(t, site, env)
	check(a, "after a restart")
	stop()
	// Without InfluxDB the open cases still come back, from the state
	// directory; the on-time rate, a window of readings, does not.
	noInflux := maps.Clone(env)
	noInflux["CITYSCREEN_INFLUX_URL"] = "http://" + testkit.FreeAddr(t)
	a, stop = launch(t, site, noInflux)
	check(a, "after a restart without InfluxDB", "on-time")
	stop()
	// Without the state directory's books, they are rebuilt from InfluxDB.
	if err := os.RemoveAll(filepath.Join(env["CITYSCREEN_STATE_DIR"], "cases")); err != nil {
		t.Fatal(err)
	}
	a, _ = start(t, site, env)
	check(a, "after a restart without the books on disk")

	// Escalation: a second heating case goes overdue; the department's
	// alert lists both, most overdue first, and clears once both close.
	pub = publisher(t, broker)
	later := time.Now().UTC()
	send("daoli", "HRB-5", "received", "housing", "heating", later)
	alertOf := func() (status string, cases []string) {
		var alerts []struct {
			Panel, Status string
			Cases         []string
			Cleared       *time.Time
		}
		getJSON(t, a.URL()+"api/alerts", &alerts)
		for _, al := range alerts {
			if al.Panel == "overdue" && al.Cleared == nil {
				return al.Status, al.Cases
			}
		}
		return "", nil
	}
	testkit.WaitFor(t, 15*time.Second, func() bool { _, cs := alertOf(); return fmt.Sprint(cs) == "[HRB-1 HRB-5]" })
	send("daoli", "HRB-1", "closed", "housing", "heating", later.Add(time.Millisecond))
	send("daoli", "HRB-5", "closed", "housing", "heating", later.Add(2*time.Millisecond))
	testkit.WaitFor(t, 15*time.Second, func() bool { st, _ := alertOf(); return st == "" })
}

// caseSite is a site with a hotline case feed (heating cases due within
// 3 s, others within an hour) and a screen "test" of panels over it.
func caseSite(t *testing.T) (testSite, string) {
	site := newSite(t)
	measurement := "case_" + site.prefix[5:]
	site.write(t, map[string]string{
		"feeds/requests.yaml": fmt.Sprintf(`id: requests
topic: %s/requests/{district}
measurement: %s
time: {path: time}
fields:
  case:   {path: id, type: string}
  status: {type: string}
  due:    {path: due_at, type: string, optional: true}
tags:
  department: {path: department}
  category:   {path: category}
cases:
  id: case
  status: status
  due: due
  statuses: [received, dispatched, closed]
  opening: [received]
  closed: [closed]
  limits:
    - {when: {category: heating}, within: 3s}
    - {within: 1h}
`, site.prefix, measurement),
		"screens/test.yaml": `id: test
title: Cases
panels:
  - {id: open, feed: requests, agg: open}
  - {id: open-by-district, feed: requests, agg: open, group_by: [district]}
  - {id: overdue, feed: requests, agg: overdue, group_by: [department], thresholds: {crit: 1}}
  - {id: due-soon, feed: requests, agg: due_soon, within: 2h}
  - {id: dispatched, feed: requests, agg: open, filter: {status: dispatched}}
  - {id: on-time, feed: requests, agg: ratio, filter: {status: closed}, where: {on_time: "true"}, window: 1h}
  - {id: late, feed: requests, agg: overdue, view: list, rows: 10}
`,
	})
	return site, measurement
}

// sendCase publishes one case event.
func sendCase(t *testing.T, pub mqtt.Client, site testSite, district, id, status, dept, category string, at time.Time) {
	t.Helper()
	pub.Publish(site.prefix+"/requests/"+district, 1, false, fmt.Sprintf(`{"id":%q,"status":%q,"department":%q,"category":%q,"time":%q}`,
		id, status, dept, category, at.Format(time.RFC3339Nano))).Wait()
}

// TestCaseListOnWall: the wall's list of overdue cases shows a case when
// its deadline passes, with no message, and drops it when it closes.
func TestCaseListOnWall(t *testing.T) {
	site, _ := caseSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=test&lang=zh#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the empty list", `!!document.querySelector('[data-panel="late"] ol.cases') && document.querySelectorAll('[data-panel="late"] li').length === 0`)
	sendCase(t, pub, site, "daoli", "HRB-7", "received", "housing", "heating", time.Now().UTC())
	waitText(t, ctx, `[data-panel="late"] li[data-case="HRB-7"] .late`, "HRB-7 late", func(s string) bool { return strings.HasPrefix(s, "超期") })
	waitText(t, ctx, `[data-panel="late"] li[data-case="HRB-7"] .where`, "its district and department", func(s string) bool {
		return strings.Contains(s, "道里区") && strings.Contains(s, "housing")
	})
	screenshot(t, ctx, "wall-cases")

	// The leaders' phone lists it too.
	phone := browser(t, 390, 844)
	if _, err := chromedp.Run(phone, chromedp.Navigate(a.URL()+"summary.html?screen=test&lang=zh#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitText(t, phone, `[data-panel="late"] li[data-case="HRB-7"]`, "HRB-7 on the phone", func(s string) bool {
		return strings.Contains(s, "HRB-7") && strings.Contains(s, "超期")
	})

	// The operators' alerts name the case, and lead to its events.
	page := browser(t, 1280, 900)
	if _, err := chromedp.Run(page, chromedp.Navigate(a.URL()+"alerts.html?lang=en#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, page, "a link to HRB-7", `!!document.querySelector('#alerts a[href*="id=HRB-7"]')`)
	// Followed as a click would.
	if _, err := chromedp.Run(page, chromedp.Evaluate[bool](`(location.href = document.querySelector('#alerts a[href*="id=HRB-7"]').href, true)`)); err != nil && !navigating(err) {
		t.Fatal(err)
	}
	waitText(t, page, "#facts", "the case as it stands", func(s string) bool { return strings.Contains(s, "received") && strings.Contains(s, "late by") })
	waitJS(t, page, "its event", `document.querySelectorAll("#events tr").length === 1`)
	sendCase(t, pub, site, "daoli", "HRB-7", "closed", "housing", "heating", time.Now().UTC())
	waitJS(t, ctx, "the list empty again", `document.querySelectorAll('[data-panel="late"] li').length === 0`)
}
