package app

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestFirstAdministratorFromSetupCode: with no admin token, no password and
// no users, nothing but the sign-in page is open, and the one-time code
// printed at start creates the first administrator, once.
func TestFirstAdministratorFromSetupCode(t *testing.T) {
	site := newSite(t)
	stateDir := t.TempDir()
	env, _ := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_ADMIN_TOKEN": "", "CITYSCREEN_STATE_DIR": stateDir})
	a, _ := launch(t, site, env)
	code := a.SetupCode()
	if code == "" {
		t.Fatal("no setup code without any administrator")
	}
	// The code is in a file only the service's user reads, not in the log.
	codeFile := SetupCodePath(stateDir)
	if b, err := os.ReadFile(codeFile); err != nil || strings.TrimSpace(string(b)) != code {
		t.Fatalf("the setup code file: %q %v", b, err)
	}
	if info, _ := os.Stat(codeFile); info.Mode().Perm() != 0o600 {
		t.Fatalf("the setup code file's mode: %v", info.Mode())
	}
	post := func(path, body string) (int, string) {
		resp, err := http.Post(a.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp, err := http.Get(a.URL() + "api/screens"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("the API without credentials: %v %v", resp.StatusCode, err)
	}
	if resp, _ := http.Get(a.URL() + "api/setup"); resp.StatusCode != 200 {
		t.Fatalf("setup status: %d", resp.StatusCode)
	}
	if status, body := post("api/setup", `{"code":"wrong","user":"chief","password":"`+testPassword+`"}`); status != 403 {
		t.Fatalf("a wrong code: %d %s", status, body)
	}
	if status, body := post("api/setup", `{"code":"`+code+`","user":"chief","password":"`+testPassword+`"}`); status != 201 {
		t.Fatalf("setup: %d %s", status, body)
	}
	if status, body := post("api/setup", `{"code":"`+code+`","user":"chief2","password":"`+testPassword+`"}`); status != 403 {
		t.Fatalf("the code worked twice: %d %s", status, body)
	}
	if _, err := os.Stat(codeFile); !os.IsNotExist(err) {
		t.Fatalf("the used setup code's file is still there: %v", err)
	}
	if status, body := post("api/login", `{"user":"chief","password":"`+testPassword+`"}`); status != 200 || !strings.Contains(body, `"role":"admin"`) {
		t.Fatalf("sign-in as the new administrator: %d %s", status, body)
	}
}
