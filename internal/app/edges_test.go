package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// TestRegistryEdges: an empty definition or a topic with NUL is refused
// before anything is written, and a change the configuration cannot take
// is answered without naming a file under the state directory.
func TestRegistryEdges(t *testing.T) {
	site := newSite(t)
	stateDir := t.TempDir()
	env, _ := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_STATE_DIR": stateDir})
	a, _ := start(t, site, env)
	call := authed(t, a, testToken)
	registry := config.RegistryPath(stateDir)

	for _, body := range []string{`{}`, fmt.Sprintf(`{"id":"nul","topic":"%s/a\u0000b","format":"number","measurement":"m","fields":{"v":{"type":"float"}}}`, site.prefix)} {
		code, out := call("POST", "api/feeds", body)
		if code != http.StatusBadRequest || !strings.Contains(out, `"key":"topic"`) {
			t.Errorf("registering %s: %d %s", body, code, out)
		}
		if _, err := os.Stat(registry); !os.IsNotExist(err) {
			t.Fatalf("registering %s wrote the registry: %v", body, err)
		}
	}
	if code, out := call("GET", "api/feeds/preview?seconds=1&topic=a%00b", ""); code != http.StatusBadRequest || !strings.Contains(out, "NUL") {
		t.Errorf("a preview of a topic with NUL: %d %s", code, out)
	}

	// A screen uses a registered feed; retiring it cannot be applied.
	level := fmt.Sprintf(`{"id":"level","topic":"%s/level/{gauge}","format":"number","measurement":"level_%s","fields":{"m":{"type":"float"}}}`, site.prefix, site.prefix)
	if code, out := call("POST", "api/feeds", level); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, out)
	}
	site.write(t, map[string]string{"screens/level.yaml": "id: level\ntitle: Level\npanels:\n  - {id: m, feed: level, field: m, agg: last, window: 1h}\n"})
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	code, out := call("DELETE", "api/feeds/level", "")
	if code != http.StatusConflict || !strings.Contains(out, "screens/level.yaml") {
		t.Fatalf("retiring a feed a screen uses: %d %s", code, out)
	}
	for _, dir := range []string{stateDir, site.dir, filepath.Base(stateDir)} {
		if strings.Contains(out, dir) {
			t.Errorf("the answer names %s: %s", dir, out)
		}
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { c, _ := call("GET", "api/screens/level", ""); return c == http.StatusOK })
}

// TestNewUndoesWhatItOpened: when New fails late (its HTTP address is
// taken), what it had opened is closed: the embedded broker's port is
// free again, the state directory opens again, and no goroutine is left
// (TestMain checks).
func TestNewUndoesWhatItOpened(t *testing.T) {
	site := newSite(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	brokerAddr := testkit.FreeAddr(t)
	vars := map[string]string{
		"CITYSCREEN_ADMIN_TOKEN": testToken, "CITYSCREEN_HTTP_ADDR": taken.Addr().String(),
		"CITYSCREEN_INFLUX_URL": env(t, "CITYSCREEN_TEST_INFLUX_URL"), "CITYSCREEN_STATE_DIR": t.TempDir(),
		"CITYSCREEN_MQTT_URL": "", "CITYSCREEN_MQTT_EMBEDDED_ADDR": brokerAddr,
	}
	cfg, err := config.Load(filepath.Join(site.dir, "cityscreen.yaml"), vars)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "http") {
		t.Fatalf("New with its address taken: %v", err)
	}
	l, err := net.Listen("tcp", brokerAddr)
	if err != nil {
		t.Fatalf("the embedded broker's port after New failed: %v", err)
	}
	l.Close()
	vars["CITYSCREEN_HTTP_ADDR"] = "127.0.0.1:0"
	cfg, _ = config.Load(filepath.Join(site.dir, "cityscreen.yaml"), vars)
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New again on the same state directory: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
