package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/testkit"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM, into dir.
func testPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cityscreen test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		kder, _ := x509.MarshalECPrivateKey(key)
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	issue("client", 3, x509.ExtKeyUsageClientAuth, nil)
}

// TestMQTTOverTLS: cityscreen connects to a Mosquitto that takes TLS only,
// checks its certificate against the configured CA, shows a client
// certificate and signs in with a user name and password from a file.
func TestMQTTOverTLS(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir)
	const password = "mqtt-broker-secret-0042"
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", filepath.Join(dir, "passwords"), "cityscreen", password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	me, _ := user.Current()
	b := &broker{dir: dir, port: freePort(t)}
	conf := fmt.Sprintf("user %s\nlistener %d 127.0.0.1\ncafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server-key.pem\n"+
		"require_certificate true\nallow_anonymous false\npassword_file %s/passwords\n", me.Username, b.port, dir, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	t.Cleanup(b.stop)
	os.WriteFile(filepath.Join(dir, "mqtt-password"), []byte(password+"\n"), 0o600)
	url := fmt.Sprintf("ssl://127.0.0.1:%d", b.port)
	vars := map[string]string{
		"CITYSCREEN_MQTT_URL": url, "CITYSCREEN_MQTT_TLS_CA": filepath.Join(dir, "ca.pem"),
		"CITYSCREEN_MQTT_TLS_CERT": filepath.Join(dir, "client.pem"), "CITYSCREEN_MQTT_TLS_KEY": filepath.Join(dir, "client-key.pem"),
		"CITYSCREEN_MQTT_USERNAME": "cityscreen", "CITYSCREEN_MQTT_PASSWORD_FILE": filepath.Join(dir, "mqtt-password"),
	}
	site := newSite(t)
	a, _ := start(t, site, vars) // ready: the broker is connected
	ws := watch(t, a, "test")

	tlsConf, err := config.ClientTLS(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("tls-pub").SetTLSConfig(tlsConf).
		SetUsername("cityscreen").SetPassword(password))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher over TLS: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": 33}`, time.Now().UnixMilli())).Wait()
	ws.until(t, 5*time.Second, func(p map[string]hubPanel) bool { return is(p["last"], 33) })

	// A server certificate from another CA is refused: never ready.
	other := t.TempDir()
	testPKI(t, other)
	wrong := map[string]string{}
	for k, v := range vars {
		wrong[k] = v
	}
	wrong["CITYSCREEN_MQTT_TLS_CA"] = filepath.Join(other, "ca.pem")
	wrong["CITYSCREEN_MQTT_CLIENT_ID"] = "cityscreen-tls-wrong-ca"
	b2, _ := launch(t, site, wrong)
	time.Sleep(2 * time.Second)
	if err := b2.ingester.Ready(); err == nil {
		t.Fatal("connected to a broker whose certificate the configured CA did not sign")
	}
	// Plain TCP to the TLS listener gets nowhere either.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", b.port)).SetClientID("plain").
		SetConnectTimeout(2 * time.Second).SetTLSConfig(&tls.Config{}))
	if tok := c.Connect(); tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("a plain connection to the TLS listener was accepted")
	}
}

// TestHTTPS: with a certificate the server speaks HTTPS only; its session
// cookie is Secure, and the websocket runs over wss.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir)
	tlsConf, err := config.ClientTLS(filepath.Join(dir, "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	saved := testClient.Transport
	testClient.Transport = &http.Transport{TLSClientConfig: tlsConf}
	t.Cleanup(func() { testClient.Transport = saved })

	site := newSite(t)
	env, _ := withEmbeddedBroker(t, map[string]string{
		"CITYSCREEN_HTTP_TLS_CERT": filepath.Join(dir, "server.pem"), "CITYSCREEN_HTTP_TLS_KEY": filepath.Join(dir, "server-key.pem"),
	})
	a, _ := start(t, site, env)
	if !strings.HasPrefix(a.URL(), "https://") {
		t.Fatalf("URL %s", a.URL())
	}
	if status, body := authed(t, a, testToken)("POST", "api/users", `{"name":"ops","role":"viewer","password":"`+testPassword+`"}`); status != 201 {
		t.Fatalf("create user: %d %s", status, body)
	}
	resp, err := testClient.Post(a.URL()+"api/login", "application/json", strings.NewReader(`{"user":"ops","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The session and the device cookie, both Secure; and HSTS.
	if resp.StatusCode != 200 || len(resp.Cookies()) != 2 || !resp.Cookies()[0].Secure || !resp.Cookies()[1].Secure ||
		resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("sign-in over HTTPS: %d, cookies %v, headers %v", resp.StatusCode, resp.Cookies(), resp.Header)
	}
	// Plain HTTP to the HTTPS port is refused.
	if resp, err := http.Get("http://" + strings.TrimPrefix(a.URL(), "https://") + "healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered")
		}
	}
	d := websocket.Dialer{TLSClientConfig: tlsConf}
	conn, _, err := d.Dial("wss://"+strings.TrimPrefix(a.URL(), "https://")+"ws?screen=test&token="+testToken, nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	conn.Close()
}

// TestInfluxDBOverTLS: readings reach an InfluxDB that speaks HTTPS only,
// its certificate checked against the configured CA; with another CA the
// server is not ready and says why.
func TestInfluxDBOverTLS(t *testing.T) {
	pki := t.TempDir()
	testPKI(t, pki)
	db := &influx{dir: t.TempDir(), port: freePort(t),
		env: []string{"INFLUXD_TLS_CERT=" + filepath.Join(pki, "server.pem"), "INFLUXD_TLS_KEY=" + filepath.Join(pki, "server-key.pem")}}
	db.start(t)
	t.Cleanup(func() { db.stop(t) })

	site := newSite(t)
	env, broker := withEmbeddedBroker(t, map[string]string{"CITYSCREEN_INFLUX_URL": db.url(), "CITYSCREEN_INFLUX_TLS_CA": filepath.Join(pki, "ca.pem")})
	a, stop := start(t, site, env) // ready: InfluxDB answered over TLS
	pub := publisher(t, broker)
	for i := 0; i < 5; i++ {
		pub.Publish(site.prefix+"/air/daoli/s1", 1, false, fmt.Sprintf(`{"ts": %d, "pm25": %d}`, time.Now().Add(-time.Duration(i)*time.Second).UnixMilli(), 10+i)).Wait()
	}
	tlsConf, _ := config.ClientTLS(filepath.Join(pki, "ca.pem"), "", "")
	client := influxdb2.NewClientWithOptions(db.url(), "", influxdb2.DefaultOptions().SetTLSConfig(tlsConf))
	defer client.Close()
	count := func() int64 {
		res, err := client.QueryAPI("-").Query(context.Background(), fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -1h) |> filter(fn: (r) => r._measurement == %q) |> count()`, site.airM))
		if err != nil {
			return -1
		}
		defer res.Close()
		var n int64
		for res.Next() {
			n += res.Record().Value().(int64)
		}
		return n
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return count() == 5 })
	stop()

	other := t.TempDir()
	testPKI(t, other)
	env["CITYSCREEN_INFLUX_TLS_CA"] = filepath.Join(other, "ca.pem")
	a, _ = launch(t, site, env)
	testkit.WaitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get(a.URL() + "readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 503 && strings.Contains(string(body), "influxdb:") && strings.Contains(string(body), "certificate")
	})
}
