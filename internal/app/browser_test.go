package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/cityscreen/cityscreen/internal/panel"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// browser starts Debian's headless Chromium. The test fails, never skips,
// without it: .ci/run installs it.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	return browserFor(t, width, height, 90*time.Second)
}

// browserFor is browser for a page that lives longer than a test's 90 s.
func browserFor(t *testing.T, width, height int, life time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium): the dashboard tests need a real browser")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("js-flags", "--expose-gc"), // the soak test measures the heap after a collection
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, life)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	// The pages speak Chinese unless told otherwise; these tests read
	// English (TestChinese reads Chinese, with ?lang=zh).
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `try { if (!location.search.includes("lang=")) localStorage.setItem("cityscreen.lang", "en") } catch (e) {}`,
	}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// screenshot saves what the browser shows as screenshots/NAME.png at the
// top of the repository (git-ignored), for people to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// navigating tells an evaluation that failed because the page was being
// replaced (a redirect to the sign-in page and back): try again.
func navigating(err error) bool {
	return strings.Contains(err.Error(), "navigated") || strings.Contains(err.Error(), "context")
}

// eventually calls check every 50 ms until it holds, for 20 s at most, and
// then fails the test saying what was awaited and what check last saw.
func eventually(t *testing.T, what string, check func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, seen := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %s; last seen: %s", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText polls an element's text until it satisfies ok.
func waitText(t *testing.T, ctx context.Context, sel string, what string, ok func(string) bool) string {
	t.Helper()
	var text string
	eventually(t, sel+" showed "+what, func() (bool, string) {
		var err error
		text, err = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		if err != nil && !navigating(err) {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return ok(text), fmt.Sprintf("%q", text)
	})
	return text
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	eventually(t, "the page showed "+what, func() (bool, string) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil && !navigating(err) {
			t.Fatalf("%s: %v", what, err)
		}
		return ok, js
	})
}

const testPassword = "songhua river ice festival"

// signIn expects the sign-in page (where a page without credentials sends
// the browser), signs in, and waits to be sent back.
func signIn(t *testing.T, ctx context.Context, user, password string) {
	t.Helper()
	waitText(t, ctx, "h2", "the sign-in page", func(s string) bool { return s == "Sign in" })
	// Its script enables the button once it has taken the form over (the
	// page may still be on its way in: no button yet).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(b => !!b && !b.disabled)(document.querySelector("#signin button"))`))
		if err != nil && !navigating(err) {
			t.Fatal(err)
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sign-in button never became usable")
		}
		time.Sleep(50 * time.Millisecond)
	}
	js := fmt.Sprintf(`document.getElementById("user").value = %q; document.getElementById("password").value = %q;
		document.querySelector("#signin button").click(); true`, user, password)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second) // argon2id under -race on a busy machine
	for {
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
		if err != nil && !navigating(err) {
			t.Fatal(err)
		}
		if loc != "/login.html" {
			return
		}
		if time.Now().After(deadline) {
			msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("error").textContent`))
			t.Fatalf("still on the sign-in page: %q", msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWallScreenInBrowser loads the wall screen in Chromium, sees a value
// published over MQTT appear and change, then restarts the server and sees
// the same page reconnect by itself and show new data without a reload.
func TestWallScreenInBrowser(t *testing.T) {
	site := newSite(t)
	httpAddr := testkit.FreeAddr(t)
	vars, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_HTTP_ADDR": httpAddr, "CITYSCREEN_STATE_DIR": t.TempDir()})
	a, stop := start(t, site, vars)
	// The wall signs in with a display token bound to its screen; the
	// token is kept in the state directory, so it outlives the restart.
	status, body := authed(t, a, testToken)("POST", "api/tokens", `{"name":"wall-1","kind":"display","screens":["test"]}`)
	var display struct{ Token, ID string }
	if json.Unmarshal([]byte(body), &display); status != 201 || display.Token == "" {
		t.Fatalf("display token: %d %s", status, body)
	}

	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+httpAddr+"/wall.html?screen=test#token="+display.Token)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.loadedAt = Date.now()`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" })
	waitText(t, ctx, "#title", "the screen's title", func(s string) bool { return s == "Test screen" })
	waitText(t, ctx, `[data-panel="last"] .value`, "no value", func(s string) bool { return s == "—" })
	// The charts are drawn after the numbers, a few per animation frame.
	waitJS(t, ctx, "a chart per panel", `document.querySelectorAll("[data-panel] canvas").length >= 5`)

	pub := publisher(t, broker)
	publish := func(x float64) {
		payload := fmt.Sprintf(`{"ts": %d, "pm25": %v}`, time.Now().UnixMilli(), x)
		if tok := pub.Publish(site.prefix+"/air/daoli/s1", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(42.5)
	waitText(t, ctx, `[data-panel="last"] .value`, "42.5", func(s string) bool { return strings.HasPrefix(s, "42.5") })
	publish(130)
	waitText(t, ctx, `[data-panel="last"] .value`, "130", func(s string) bool { return strings.HasPrefix(s, "130") })
	waitText(t, ctx, `[data-panel="mean"] .badge`, "crit for a mean of 86.25 >= 115? no: warn", func(s string) bool { return strings.HasPrefix(s, "warn") })
	waitText(t, ctx, "#alerts", "the warning in the ticker", func(s string) bool { return strings.Contains(s, "mean: 86.3") })
	screenshot(t, ctx, "wall-1920x1080")

	// The server goes away and comes back: the page says so, then resumes.
	pub.Disconnect(100) // before its broker goes, so paho has no reconnect running
	stop()
	waitText(t, ctx, "#conn", "reconnecting", func(s string) bool { return strings.HasPrefix(s, "reconnecting") })
	a, _ = start(t, site, vars)
	waitText(t, ctx, "#conn", "live again", func(s string) bool { return s == "live" })
	pub = publisher(t, broker)
	publish(7)
	waitText(t, ctx, `[data-panel="last"] .value`, "7 after the restart", func(s string) bool { return strings.HasPrefix(s, "7") })
	reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.loadedAt === undefined`))
	if err != nil || reloaded {
		t.Fatalf("the page was reloaded (err %v)", err)
	}

	// Revoked, the display says so on screen.
	if status, body := authed(t, a, testToken)("DELETE", "api/tokens/"+display.ID, ""); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	waitText(t, ctx, "#banner", "that access was revoked", func(s string) bool { return strings.Contains(s, "Access revoked") })
}

// TestSummaryOnPhone: a leader opens the summary on a phone, is sent to
// sign in, comes back to a card per panel, the one in trouble first.
func TestSummaryOnPhone(t *testing.T) {
	// Today's readings must still be today's when the page is checked, a
	// minute later at most: close to Harbin's midnight, wait for the new
	// day first.
	harbin, err := time.LoadLocation(panel.DefaultTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now().In(harbin); now.Hour() == 23 && now.Minute() >= 58 {
		y, m, d := now.Date()
		time.Sleep(time.Until(time.Date(y, m, d+1, 0, 0, 1, 0, harbin)))
	}
	site := newSite(t)
	os.WriteFile(filepath.Join(site.dir, "screens", "leader.yaml"), []byte(`id: leader
title: Leader
panels:
  - {id: today, title: Readings today, feed: air, agg: count, calendar: day}
`), 0o644)
	env, broker := withEmbeddedBroker(t, nil)
	a, stop := start(t, site, env)
	if status, body := authed(t, a, testToken)("POST", "api/users", `{"name":"leader","role":"viewer","password":"`+testPassword+`"}`); status != 201 {
		t.Fatalf("create user: %d %s", status, body)
	}
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/air/nangang/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 120}`, time.Now().UnixMilli())).Wait()

	ctx := browser(t, 390, 844)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"summary.html?screen=test")); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, "leader", testPassword)
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" })
	first := waitText(t, ctx, "#cards .card h2", "the critical panel first", func(s string) bool { return s == "mean" })
	cards, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#cards .card").length`))
	if err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if cards != 5 || overflow > 0 {
		t.Fatalf("%d cards (want 5), first %q, %d px wider than the phone", cards, first, overflow)
	}
	screenshot(t, ctx, "summary-390x844")
	// A tap opens a card's trend.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('[data-panel="last"]').click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `[data-panel="last"] svg.trend`, "the trend", func(string) bool { return true })

	// Today beside yesterday: one reading yesterday (Harbin time), three today
	// with the one above.
	for _, ago := range []time.Duration{24 * time.Hour, 0, 0} {
		pub.Publish(site.prefix+"/air/daoli/s2", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 10}`, time.Now().Add(-ago).UnixMilli())).Wait()
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"summary.html?screen=leader")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `[data-panel="today"] .previous`, "yesterday beside today", func(s string) bool { return s == "yesterday 1 (+200%)" })

	// Offline: the page opens from the phone's cache and shows the values
	// it kept, marked offline with their age.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Reload()); err != nil { // now the service worker serves the page
		t.Fatal(err)
	}
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" })
	pub.Disconnect(100)
	stop()
	if _, err := chromedp.Run(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `[data-panel="today"] .value`, "the kept value offline", func(s string) bool { return s == "3" })
	waitText(t, ctx, "#conn", "offline", func(s string) bool { return s == "offline" })
}

// TestEngineerPage: on the feeds page an engineer tries a definition
// against a payload, registers it, and sees its first message counted.
func TestEngineerPage(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	if status, body := authed(t, a, testToken)("POST", "api/users", `{"name":"engineer","role":"engineer","password":"`+testPassword+`"}`); status != 201 {
		t.Fatalf("create user: %d %s", status, body)
	}
	ctx := browser(t, 1280, 1000)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"feeds.html")); err != nil {
		t.Fatal(err)
	}
	// Signed in with a cookie, the page's changes carry the CSRF header.
	signIn(t, ctx, "engineer", testPassword)
	click := func(id string) {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("`+id+`").click(), true`)); err != nil {
			t.Fatal(err)
		}
	}
	waitText(t, ctx, "#feeds", "the file feeds", func(s string) bool { return strings.Contains(s, "(air)") })
	click("dryrun")
	waitText(t, ctx, "#result", "the dry run's point", func(s string) bool {
		return strings.HasPrefix(s, "200") && strings.Contains(s, `"level_m": 116.42`) && strings.Contains(s, `"gauge": "daoli-wharf"`)
	})
	click("register")
	waitText(t, ctx, "#result", "the registration", func(s string) bool { return strings.HasPrefix(s, "201") })
	waitText(t, ctx, "#feeds", "the new feed", func(s string) bool { return strings.Contains(s, "(river-level)") })
	pub := publisher(t, broker)
	pub.Publish("harbin/songhua/daoli-wharf/level", 1, false, "116.5").Wait()
	// The table refreshes every 5 s: its received column counts the message.
	deadline := time.Now().Add(20 * time.Second)
	for {
		received, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			for (const tr of document.querySelectorAll("#feeds tr")) {
				if (tr.textContent.includes("(river-level)")) return tr.cells[4].textContent;
			}
			return "";
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if received == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new feed's received count shows %q, want 1", received)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Its own connection has subscribed its topic: the broker column says so.
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		for (const tr of document.querySelectorAll("#feeds tr")) {
			if (tr.textContent.includes("(river-level)")) return tr.cells[8].textContent + " " + tr.cells[8].title;
		}
		return "";
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(state, "subscribed ") || !strings.HasSuffix(state, ".river-level") {
		t.Fatalf("the new feed's broker column shows %q, want subscribed on its own connection", state)
	}
}

// TestSilentFeedOnWall: a feed quiet past its interval is raised in the
// wall's alert ticker.
func TestSilentFeedOnWall(t *testing.T) {
	site := newSite(t)
	heat := filepath.Join(site.dir, "feeds", "heat.yaml")
	body, _ := os.ReadFile(heat)
	os.WriteFile(heat, append(body, []byte("interval: 1s\n")...), 0o644)
	env, _ := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=test#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#alerts", "the silent feed", func(s string) bool {
		return strings.Contains(s, "Feed silent: heat, nothing since cityscreen started")
	})
}

// TestAlertAcknowledgedInBrowser: an operator signs in on the alerts page,
// acknowledges a critical alert with a comment and assigns it, and the
// wall (a display) shows who did and to whom it fell; an alert nobody
// acknowledges escalates, on the alerts page too; an alert is shelved and
// taken off the shelf; a silent feed's alert is resolved by hand.
func TestAlertAcknowledgedInBrowser(t *testing.T) {
	site := newSite(t)
	os.WriteFile(filepath.Join(site.dir, "screens", "alarm.yaml"), []byte(`id: alarm
panels:
  - {id: pm25-now, title: PM2.5 now, feed: air, field: pm25, agg: last, window: 1h, stale_after: 1h, thresholds: {crit: 100}}
`), 0o644)
	os.WriteFile(filepath.Join(site.dir, "screens", "quiet.yaml"), []byte("id: quiet\npanels:\n  - {id: gone-quiet, feed: air, agg: count, window: 1h, stale_after: 2s}\n"), 0o644)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ALERTS_ESCALATE_AFTER": "3s"})
	a, _ := start(t, site, env)
	call := authed(t, a, testToken)
	if status, body := call("POST", "api/users", `{"name":"duty","role":"operator","password":"`+testPassword+`"}`); status != 201 {
		t.Fatalf("create user: %d %s", status, body)
	}
	status, body := call("POST", "api/tokens", `{"name":"hall","kind":"display","screens":["alarm"]}`)
	var display struct{ Token string }
	if json.Unmarshal([]byte(body), &display); status != 201 {
		t.Fatalf("display token: %d %s", status, body)
	}
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 130}`, time.Now().UnixMilli())).Wait()

	ctx := browser(t, 1280, 900)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"alerts.html")); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, "duty", testPassword)
	waitText(t, ctx, "#alerts button.ack", "the Acknowledge button", func(s string) bool { return s == "Acknowledge" })
	// The test screen's mean is in alert too: acknowledge this screen's.
	const row = `[...document.querySelectorAll("#alerts tr")].find((tr) => tr.textContent.includes("PM2.5 now"))`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = `+row+`; r.querySelector("input.ack").value = "going to look";
		r.querySelector("button.ack").click(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	rowShows := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(`+row+` || {}).textContent || ""`))
			if err != nil && !navigating(err) {
				t.Fatal(err)
			}
			if ok(text) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the alarm's row never showed %s: %q", what, text)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	rowShows("who acknowledged, and why", func(s string) bool {
		return strings.Contains(s, "duty, ") && strings.Contains(s, "going to look") && !strings.Contains(s, "user:duty") // the name, not the audit actor
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = `+row+`; r.querySelector("input.assign").value = "住建局";
		r.querySelector("button.assign").click(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	rowShows("to whom it is assigned", func(s string) bool { return strings.Contains(s, "住建局 (duty)") })
	// The test screen's mean, acknowledged by nobody, escalates.
	waitJS(t, ctx, "the unacknowledged alert escalated", `[...document.querySelectorAll("#alerts tr")].some((tr) => tr.textContent.includes("mean") && tr.textContent.includes("escalated"))`)
	// It is shelved for two hours, then taken off the shelf.
	const meanRow = `[...document.querySelectorAll("#alerts tr")].find((tr) => tr.textContent.includes("mean") && !tr.textContent.includes("PM2.5"))`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = `+meanRow+`; r.querySelector("input.shelve").value = "2h";
		r.querySelector("button.shelve").click(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the alert shelved", `!!(`+meanRow+`) && `+meanRow+`.textContent.includes("shelved until") && !!`+meanRow+`.querySelector("button.unshelve")`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](meanRow+`.querySelector("button.unshelve").click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the alert off the shelf", `!!(`+meanRow+`) && !`+meanRow+`.textContent.includes("shelved until")`)
	// A silent feed's alert is resolved by hand.
	const quietRow = `[...document.querySelectorAll("#alerts tr")].find((tr) => tr.textContent.includes("gone-quiet"))`
	waitJS(t, ctx, "the stale alert's Resolve button", `!!(`+quietRow+`) && !!`+quietRow+`.querySelector("button.resolve")`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const r = `+quietRow+`; r.querySelector("input.resolve").value = "sensor removed";
		r.querySelector("button.resolve").click(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the stale alert resolved by hand", `!!(`+quietRow+`) && `+quietRow+`.textContent.includes("by hand: duty, sensor removed")`)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=alarm#token="+display.Token)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#alerts", "the acknowledgement and the assignee in the ticker", func(s string) bool {
		return strings.Contains(s, "PM2.5 now: 130") && strings.Contains(s, "✓ duty") && strings.Contains(s, "→ 住建局")
	})
}

// TestPlaylistAndRemoteReload: a display bound to a playlist rotates
// through its screens, each for its time; admins see it connected and
// tell it to reload, and it does.
func TestPlaylistAndRemoteReload(t *testing.T) {
	site := newSite(t)
	os.WriteFile(filepath.Join(site.dir, "screens", "second.yaml"), []byte("id: second\ntitle: Second screen\npanels:\n  - {id: n, feed: air, agg: count, window: 1h}\n"), 0o644)
	os.MkdirAll(filepath.Join(site.dir, "playlists"), 0o755)
	os.WriteFile(filepath.Join(site.dir, "playlists", "rota.yaml"), []byte("id: rota\nscreens:\n  - {screen: test, duration: 5s}\n  - {screen: second, duration: 5s}\n"), 0o644)
	env, _ := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	call := authed(t, a, testToken)
	status, body := call("POST", "api/tokens", `{"name":"lobby","kind":"display","playlists":["rota"]}`)
	var display struct{ Token, ID string }
	if json.Unmarshal([]byte(body), &display); status != 201 {
		t.Fatalf("display token: %d %s", status, body)
	}
	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?playlist=rota#token="+display.Token)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#title", "the first screen", func(s string) bool { return s == "Test screen" })
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" })
	waitText(t, ctx, "#title", "the second screen after 5 s", func(s string) bool { return s == "Second screen" })
	waitText(t, ctx, `[data-panel="n"] h2`, "the second screen's panel", func(s string) bool { return s == "n" })

	var displays []struct {
		ID        string
		Playlists []string
		Connected int
	}
	_, body = call("GET", "api/displays", "")
	json.Unmarshal([]byte(body), &displays)
	if len(displays) != 1 || displays[0].Connected != 1 || displays[0].Playlists[0] != "rota" {
		t.Fatalf("displays: %s", body)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.beforeReload = true`)); err != nil {
		t.Fatal(err)
	}
	if status, body := call("POST", "api/displays/"+display.ID+"/reload", ""); status != 200 || body != "{\"pages\":1}\n" {
		t.Fatalf("reload: %d %s", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.beforeReload === undefined`))
		if err == nil && gone {
			break
		}
		if err != nil && !navigating(err) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the page did not reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A display may not show a playlist it is not bound to.
	if status, _ := authed(t, a, display.Token)("GET", "api/playlists/other", ""); status != 404 {
		t.Fatalf("an unknown playlist: %d", status)
	}
}

// TestChinese: the pages speak Chinese by default for Harbin (and with
// ?lang=zh): the wall's status, ages and district names, the sign-in page.
func TestChinese(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	pub := publisher(t, broker)
	pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 42}`, time.Now().UnixMilli())).Wait()
	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=test&lang=zh#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#conn", "实时", func(s string) bool { return s == "实时" })
	waitText(t, ctx, ".ticker .label", "告警", func(s string) bool { return s == "告警" })
	waitText(t, ctx, `[data-panel="last"] .age`, "an age in Chinese", func(s string) bool { return strings.HasSuffix(s, "秒前") })
	waitText(t, ctx, `[data-panel="by-district"]`, "道里", func(s string) bool { return true })
	names, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.cityscreenLive.state.panels.get("by-district").groups.map(g => cityscreenLive.label(g.tags)))`))
	if err != nil || names != `["道里区"]` {
		t.Fatalf("district names %s (%v)", names, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"login.html?lang=zh")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#signin h2", "登录", func(s string) bool { return s == "登录" })
	waitText(t, ctx, "#lang", "the switch to English", func(s string) bool { return s == "English" })
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("lang").click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#signin h2", "Sign in after switching", func(s string) bool { return s == "Sign in" })
}

// TestBrokerDropsOnFeedsPage: when the broker drops messages because of
// its limits (here the embedded broker, for a subscriber that stopped
// reading), the feeds page says so; before that it says nothing.
func TestBrokerDropsOnFeedsPage(t *testing.T) {
	site := newSite(t)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	ctx := browser(t, 1280, 1000)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"feeds.html?lang=en#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#feeds", "the file feeds", func(s string) bool { return strings.Contains(s, "(air)") })
	hidden := func() bool {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("broker-drops").hidden`))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if !hidden() {
		t.Fatal("the page tells of drops before any")
	}

	// A subscriber that stops reading: once its socket and its 8,192
	// pending writes at the broker are full, the broker drops.
	stuck, err := net.Dial("tcp", strings.TrimPrefix(broker, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.CleanSession, connect.Keepalive, connect.ClientIdentifier = "MQTT", 4, true, 0, "stuck"
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 1, []string{"flood/#"}, []byte{0}
	if err := connect.Write(stuck); err != nil {
		t.Fatal(err)
	}
	if err := sub.Write(stuck); err != nil {
		t.Fatal(err)
	}
	stuck.Read(make([]byte, 9)) // CONNACK and SUBACK; nothing is read after them
	pub := publisher(t, broker)
	payload := strings.Repeat("x", 1024)
	for i := 0; i < 30000; i++ {
		pub.Publish("flood/x", 0, false, payload)
	}
	pub.Publish("flood/x", 0, false, payload).Wait()
	text := waitText(t, ctx, "#broker-drops", "the broker's drops", func(s string) bool { return strings.Contains(s, "dropping messages") })
	if hidden() || !strings.Contains(text, "max_queued_messages") {
		t.Fatalf("the drops are told %q (hidden %v)", text, hidden())
	}
	status, body := authed(t, a, testToken)("GET", "api/broker", "")
	var drops struct {
		Watching, Stats bool
		Total           int64 `json:"dropped_total"`
	}
	if err := json.Unmarshal([]byte(body), &drops); status != 200 || err != nil || !drops.Watching || !drops.Stats || drops.Total == 0 {
		t.Fatalf("GET /api/broker: %d %s", status, body)
	}
}

// TestWallTrendStepInProgress: the wall's trend line moves with the
// readings of the step in progress, not only when a step begins.
func TestWallTrendStepInProgress(t *testing.T) {
	site := newSite(t)
	os.WriteFile(filepath.Join(site.dir, "screens", "trend.yaml"), []byte(`id: trend
panels:
  - {id: n, feed: air, agg: count, window: 1m, history: {span: 1h, step: 5m}}
`), 0o644)
	env, broker := withEmbeddedBroker(t, nil)
	a, _ := start(t, site, env)
	ctx := browser(t, 1920, 1080)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.URL()+"wall.html?screen=trend#token="+testToken)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#conn", "live", func(s string) bool { return s == "live" || s == "实时" })
	pub := publisher(t, broker)
	for i := 1; i <= 3; i++ {
		pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 10}`, time.Now().UnixMilli())).Wait()
		waitText(t, ctx, "body", fmt.Sprintf("the trend's step in progress at %d", i), func(string) bool {
			last, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(() => {
				const tr = window.cityscreenLive.trends.get("n") || [];
				return tr.length ? tr[tr.length - 1][1] : -1;
			})()`))
			return err == nil && last == float64(i)
		})
	}
}
