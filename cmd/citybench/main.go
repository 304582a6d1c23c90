// Command citybench measures what one machine carries: it drives the real
// stack on loopback (Mosquitto, cityscreen, InfluxDB), publishes numbered,
// timestamped readings at a target rate over several connections while
// websocket clients watch a screen, and reports readings published, stored
// (counted in InfluxDB) and lost, the sustained rate, publish-to-frame
// latency, frames delivered, cityscreen's CPU per 1,000 readings and its
// memory. With -ramp it raises the rate until readings are lost or the
// delay grows, and reports the highest rate held. With -baseline it
// measures a bare paho subscriber in place of cityscreen, for comparison.
//
//	citybench -rate 5000 -duration 60s -clients 100
//	citybench -ramp 2000:2000:50000 -duration 30s
//	citybench -baseline paho-buffered -rate 45000 -duration 20s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/DataDog/sketches-go/ddsketch"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/tidwall/gjson"

	"github.com/cityscreen/cityscreen/internal/ingest"
)

type options struct {
	binary, influx, broker, jsonOut, ramp string
	baseline, bareSubscriber              string
	stream                                string
	roles                                 []string // each instance's cluster.role
	partials                              bool
	// sentAt holds each reading's publish time (unix ns) by its number,
	// for the per-reading delays.
	sentAt                          []atomic.Int64
	st                              stream
	drops                           *dropCount
	rate, conns, clients, instances int
	godebug                         string // GODEBUG as given, for the instances
	duration, maxP99                time.Duration
	qos                             int
}

// Result is one run at one rate.
type Result struct {
	TargetRate int     `json:"target_rate"`
	Seconds    float64 `json:"seconds"`
	Published  int64   `json:"published"`
	Received   int64   `json:"received"` // by cityscreen, from its feed counters
	Stored     int64   `json:"stored"`
	Lost       int64   `json:"lost"`
	// LostAtBroker is what the broker acknowledged to the publishers and
	// never delivered to cityscreen (its queue for the client overflowed).
	LostAtBroker int64 `json:"lost_at_broker"`
	// SlowCommits counts the write-ahead log's commits (write and fsync)
	// that took over 25 ms: nothing is acknowledged meanwhile, and at
	// 20,000 readings a second Mosquitto's queue of 1,000 lasts 50 ms.
	SlowCommits int64 `json:"slow_commits"`
	// SlowAcks counts messages acknowledged over 25 ms after they arrived
	// (cityscreen_ingest_ack_seconds): the broker's queue fills meanwhile.
	SlowAcks int64 `json:"slow_acks"`
	// BrokerDropped is what the broker reported dropping because of its
	// limits during the run, for all its clients (the count cityscreen
	// follows too, ingest.DropTopics); -1 when it cannot be told: the
	// broker's statistics do not reach citybench, or it reported a count
	// during the run without one known before it (Mosquitto sends its
	// count only when it changes). citybench's own Mosquitto reports every
	// second; another every sys_interval (10 s by default), so its last
	// drops of a run may be missing.
	BrokerDropped int64 `json:"broker_dropped"`
	// StoreConns counts cityscreen's connections taking the stream to
	// store it, at the end (cityscreen_mqtt_connections{path="store"}):
	// one per feed by default.
	StoreConns    int     `json:"store_connections"`
	SustainedRate float64 `json:"sustained_rate"`
	DrainSeconds  float64 `json:"drain_seconds"`
	// LatencyP50ms, P99 and Max are the frames' freshness: for each
	// frame a client receives, the age of the newest reading in it. Not
	// a reading's delay: a reading that waits for a frame, or behind
	// another client's, never shows here.
	LatencyP50ms float64 `json:"latency_p50_ms"`
	LatencyP99ms float64 `json:"latency_p99_ms"`
	LatencyMaxms float64 `json:"latency_max_ms"`
	// DelayP50ms, P99 and Max are each reading's delay to each client:
	// from its publish time to the first frame at that client whose
	// seq panel shows its number or a higher one (of its feed), for a
	// sample of readings at every client (DelaySamples in all).
	DelayP50ms    float64 `json:"reading_delay_p50_ms"`
	DelayP99ms    float64 `json:"reading_delay_p99_ms"`
	DelayMaxms    float64 `json:"reading_delay_max_ms"`
	DelaySamples  int64   `json:"reading_delay_samples"`
	Clients       int     `json:"clients"`
	FramesPerSec  float64 `json:"frames_per_second"`
	CPUus         float64 `json:"cpu_us_per_reading"`
	CPUmsPer1000  float64 `json:"cpu_ms_per_1000_readings"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"` // the largest instance's
	Instances     int     `json:"instances"`
	PerClientKiB  float64 `json:"memory_per_client_kib"`
	HeldWithinP99 bool    `json:"held"`
	// Roles are the instances' roles, and CPUByRole the CPU per published
	// reading of the instances of each role, in microseconds.
	Roles     []string           `json:"roles,omitempty"`
	Partials  bool               `json:"partials,omitempty"`
	CPUByRole map[string]float64 `json:"cpu_us_per_reading_by_role,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.binary, "cityscreen", "bin/cityscreen", "the cityscreen binary to measure")
	flag.StringVar(&o.influx, "influx", "", "InfluxDB URL; empty starts a private InfluxDB 1.8 with scripts/influxd.sh")
	flag.StringVar(&o.broker, "broker", "", "MQTT broker URL; empty starts a private Mosquitto with its shipped limits")
	flag.IntVar(&o.rate, "rate", 5000, "readings per second")
	flag.IntVar(&o.conns, "conns", 4, "publishing connections")
	flag.IntVar(&o.clients, "clients", 100, "websocket clients watching the screen")
	flag.IntVar(&o.instances, "instances", 1, "cityscreen instances; more than one share the storing through a share group, and the clients are spread over them")
	flag.IntVar(&o.qos, "qos", 1, "QoS of the readings")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long to publish at each rate")
	flag.StringVar(&o.ramp, "ramp", "", "START:STEP:MAX: raise the rate until readings are lost or p99 passes -max-p99")
	flag.DurationVar(&o.maxP99, "max-p99", 500*time.Millisecond, "the publish-to-frame p99 a rate must keep to count as held")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.baseline, "baseline", "", `measure a bare paho subscriber in place of cityscreen, for comparison: "paho" (paho's own reads and acknowledgements) or "paho-buffered" (reads through a 64 KiB buffer, as cityscreen's are); it only counts the messages`)
	flag.StringVar(&o.bareSubscriber, "bare-subscriber", "", "(internal) run as the -baseline subscriber with this run ID")
	roles := flag.String("roles", "", `each instance's role, comma-separated ("ingest,ingest,screens"); sets -instances; the clients watch the instances that serve screens`)
	flag.BoolVar(&o.partials, "partials", false, "instances share partial aggregates (cluster.partials): screens instances merge them instead of decoding the stream")
	flag.StringVar(&o.stream, "stream", "city", `what to publish: "city" (air quality, traffic and heating readings as the city's feeds send them) or "minimal" (one feed of three fields)`)
	flag.Parse()
	// The websocket clients stand for browsers on other machines: a GC in
	// citybench must not shrink their goroutines' stacks, to grow them
	// again in the next frame on the cores cityscreen shares. The
	// instances run with GODEBUG as given.
	o.godebug = os.Getenv("GODEBUG")
	if o.bareSubscriber == "" {
		os.Setenv("GODEBUG", strings.TrimPrefix(o.godebug+",gcshrinkstackoff=1", ","))
		// Nor should its GC run often: the clients' frames allocate
		// nothing, and after they connect a run adds little to the heap.
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400)
		}
	}
	if *roles != "" {
		o.roles = strings.Split(*roles, ",")
		o.instances = len(o.roles)
	}
	o.drops = &dropCount{}
	log.SetFlags(log.Ltime)
	var ok bool
	if o.st, ok = streams[o.stream]; !ok {
		log.Fatalf("-stream %q: want city or minimal", o.stream)
	}
	if o.bareSubscriber != "" {
		bareSubscriber(o)
		return
	}
	if o.baseline != "" && o.baseline != "paho" && o.baseline != "paho-buffered" {
		log.Fatalf("-baseline %q: want paho or paho-buffered", o.baseline)
	}

	work, err := os.MkdirTemp("", "citybench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	if o.influx == "" && o.baseline == "" {
		port := freePort()
		out, err := exec.Command("scripts/influxd.sh", filepath.Join(work, "influx"), strconv.Itoa(port)).Output()
		if err != nil {
			log.Fatalf("starting InfluxDB (run citybench from the repository): %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		stops = append(stops, func() { syscall.Kill(pid, syscall.SIGTERM) })
		o.influx = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	if o.broker == "" {
		port := freePort()
		conf := filepath.Join(work, "mosquitto.conf")
		// Mosquitto's shipped limits: 20 in flight, 1,000 queued per client.
		// It reports its count of dropped messages every second.
		os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 1\nlog_dest file %s\n", port, filepath.Join(work, "mosquitto.log"))), 0o644)
		cmd := exec.Command("mosquitto", "-c", conf)
		if err := cmd.Start(); err != nil {
			log.Fatalf("starting mosquitto: %v", err)
		}
		stops = append(stops, func() { cmd.Process.Kill(); cmd.Wait() })
		waitPort(port)
		o.broker = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		o.drops.known = true // a fresh broker has dropped nothing
	}

	o.drops.follow(o.broker)

	rates := []int{o.rate}
	if o.ramp != "" {
		parts := strings.Split(o.ramp, ":")
		if len(parts) != 3 {
			log.Fatal("-ramp wants START:STEP:MAX")
		}
		start, _ := strconv.Atoi(parts[0])
		step, _ := strconv.Atoi(parts[1])
		end, _ := strconv.Atoi(parts[2])
		rates = nil
		for r := start; r <= end && step > 0; r += step {
			rates = append(rates, r)
		}
	}
	var results []Result
	best := 0
	for i, r := range rates {
		run := run
		if o.baseline != "" {
			run = baseline
		}
		res, err := run(o, work, fmt.Sprintf("run%d", i), r)
		if err != nil {
			log.Fatal(err)
		}
		results = append(results, res)
		printRow(res)
		if !res.HeldWithinP99 {
			break
		}
		best = r
	}
	printTable(results)
	if o.ramp != "" {
		fmt.Printf("\nhighest rate held (nothing lost, p99 within %s): %d readings/s\n", o.maxP99, best)
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"results": results, "highest_held": best}, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// run measures one rate with a fresh cityscreen.
func run(o options, work, name string, rate int) (Result, error) {
	res := Result{TargetRate: rate, Clients: o.clients, Instances: o.instances, Roles: o.roles, Partials: o.partials}
	// Each reading's publish time by its number, for its delay to each
	// client: room for the run at its rate, and half as much again.
	o.sentAt = make([]atomic.Int64, int(float64(rate)*o.duration.Seconds()*1.5)+10_000)
	dir := filepath.Join(work, name)
	// Each run has its own measurement, topics and client IDs, so that no
	// session or queue a broker kept from an earlier run counts in it.
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	if err := o.st.writeFiles(dir, id); err != nil {
		return res, err
	}
	const token = "citybench-admin-token-0123456789abcdef"
	var pids, addrs []int
	for i := 0; i < max(o.instances, 1); i++ {
		port := freePort()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(o.binary, "serve")
		cmd.Env = append(os.Environ(), "CITYSCREEN_CONFIG="+filepath.Join(dir, "cityscreen.yaml"), "CITYSCREEN_HTTP_ADDR="+addr,
			"CITYSCREEN_MQTT_URL="+o.broker, fmt.Sprintf("CITYSCREEN_MQTT_CLIENT_ID=citybench-%s-%d", id, i), "CITYSCREEN_INFLUX_URL="+o.influx,
			fmt.Sprintf("CITYSCREEN_STATE_DIR=%s/state-%d", dir, i), "CITYSCREEN_ADMIN_TOKEN="+token, "CITYSCREEN_LOG_LEVEL=warn",
			"CITYSCREEN_AUTH_API_RATE=100000",
			// Every client connects from 127.0.0.1: past the per-address cap.
			fmt.Sprintf("CITYSCREEN_HTTP_WEBSOCKETS_PER_CLIENT=%d", o.clients+10), "GODEBUG="+o.godebug)
		if o.instances > 1 {
			cmd.Env = append(cmd.Env, "CITYSCREEN_CLUSTER_SHARE_GROUP=citybench-"+id)
		}
		if i < len(o.roles) {
			cmd.Env = append(cmd.Env, "CITYSCREEN_CLUSTER_ROLE="+o.roles[i])
		}
		if o.partials {
			cmd.Env = append(cmd.Env, "CITYSCREEN_CLUSTER_SECRET=citybench-cluster-secret-0123456789abcdef",
				"CITYSCREEN_CLUSTER_NAME=citybench-"+id, "CITYSCREEN_CLUSTER_PARTIALS=true")
		}
		logf, _ := os.Create(filepath.Join(work, fmt.Sprintf("%s-%d.log", name, i)))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return res, fmt.Errorf("starting %s: %w", o.binary, err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); logf.Close() }()
		pids, addrs = append(pids, cmd.Process.Pid), append(addrs, port)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if r, err := http.Get("http://" + addr + "/readyz"); err == nil {
				r.Body.Close()
				if r.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("cityscreen not ready in 30 s: see %s", logf.Name())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The websocket clients, and the memory they take.
	rssBefore := int64(0)
	for _, pid := range pids {
		rssBefore += procKiB(pid, "VmRSS")
	}
	// Each client keeps its own latencies (merged after the run) and reads
	// only the two values it needs from a frame, so that 10,000 clients on
	// the same two cores measure cityscreen rather than themselves.
	var frames atomic.Int64
	var conns []*websocket.Conn
	watched := make([]*latencies, o.clients)
	var serving []int // the ports of the instances that serve screens
	for i, port := range addrs {
		if i >= len(o.roles) || o.roles[i] != "ingest" {
			serving = append(serving, port)
		}
	}
	// A client reads a frame in one system call, not two or three (the
	// default 4 KiB buffer is smaller than a city frame): 10,000 clients'
	// reads are on the cores cityscreen shares.
	dialer := websocket.Dialer{HandshakeTimeout: 45 * time.Second, ReadBufferSize: 16 << 10}
	for i := 0; i < o.clients; i++ {
		c, _, err := dialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws?screen=bench&token=%s", serving[i%len(serving)], token), nil)
		if err != nil {
			return res, fmt.Errorf("websocket client %d: %w", i, err)
		}
		conns = append(conns, c)
		l := &latencies{seqPanels: o.st.seqPanels, last: make([]int64, len(o.st.seqPanels)), sentAt: o.sentAt,
			step: sampleStep(o.clients, rate), rem: int64(i)}
		l.rem %= l.step
		l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
		watched[i] = l
		go l.watch(c, &frames)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(time.Second)
	if o.clients > 0 {
		rss := int64(0)
		for _, pid := range pids {
			rss += procKiB(pid, "VmRSS")
		}
		res.PerClientKiB = float64(rss-rssBefore) / float64(o.clients)
	}
	for _, l := range watched {
		l.reset()
	}
	frames.Store(0)
	// What the clients' connecting left is collected now, not in a GC
	// during the run (10,000 clients: 190 ms, on cityscreen's cores).
	runtime.GC()

	// Publish.
	cpuAll := func() (d time.Duration) {
		for _, pid := range pids {
			d += cpuTime(pid)
		}
		return d
	}
	drops0, dropsKnown, reports0 := o.drops.mark()
	cpu0 := cpuAll()
	cpuOf := make([]time.Duration, len(pids))
	for i, pid := range pids {
		cpuOf[i] = cpuTime(pid)
	}
	start := time.Now()
	published, err := publish(o, rate, id)
	if err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.Published = published
	res.SustainedRate = float64(res.Published) / elapsed.Seconds()
	res.FramesPerSec = float64(frames.Load()) / elapsed.Seconds()

	// Drain: until InfluxDB holds every reading; or, once some were lost
	// before cityscreen had them, until it holds all cityscreen received
	// and nothing more has come for 3 s; or 60 s. The drain time is when
	// the last of them was stored.
	end := time.Now()
	client := influxdb2.NewClient(o.influx, "")
	defer client.Close()
	var received, stored int64
	settled := time.Now() // when received or stored last changed
	for {
		now := time.Now()
		if n := count(client, id); n != stored {
			stored, settled = n, now
			res.DrainSeconds = now.Sub(end).Seconds()
		}
		if n := receivedAll(addrs, token); n != received {
			received, settled = n, now
		}
		if stored >= res.Published || now.Sub(end) > 60*time.Second ||
			(stored >= received && now.Sub(settled) > 3*time.Second) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.Stored = stored
	res.Lost = max(res.Published-res.Stored, 0)
	for _, port := range addrs {
		m := metrics(port, token)
		res.Received += benchReceived(m)
		res.SlowCommits += int64(m["cityscreen_wal_commit_seconds_count"] - m[`cityscreen_wal_commit_seconds_bucket{le="0.025"}`])
		for k, v := range m {
			switch {
			case strings.HasPrefix(k, "cityscreen_ingest_ack_seconds_count"):
				res.SlowAcks += int64(v)
			case strings.HasPrefix(k, "cityscreen_ingest_ack_seconds_bucket") && strings.Contains(k, `le="0.025"`):
				res.SlowAcks -= int64(v)
			case strings.HasPrefix(k, "cityscreen_mqtt_connections{") && strings.Contains(k, `path="store"`):
				res.StoreConns += int(v)
			}
		}
	}
	res.LostAtBroker = max(res.Published-res.Received, 0)
	res.BrokerDropped = o.drops.since(drops0, dropsKnown, reports0)
	cpu := cpuAll() - cpu0
	if res.Published > 0 {
		res.CPUus = cpu.Seconds() * 1e6 / float64(res.Published)
		res.CPUmsPer1000 = res.CPUus
		if len(o.roles) > 0 {
			res.CPUByRole = map[string]float64{}
			for i, pid := range pids {
				res.CPUByRole[o.roles[i]] += (cpuTime(pid) - cpuOf[i]).Seconds() * 1e6 / float64(res.Published)
			}
		}
	}
	for _, pid := range pids {
		res.PeakRSSMiB = max(res.PeakRSSMiB, float64(procKiB(pid, "VmHWM"))/1024)
	}
	lat, _ := ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	latMax := 0.0
	for _, l := range watched {
		l.mu.Lock()
		for _, d := range l.ms {
			lat.Add(max(d, 0))
			latMax = max(latMax, d)
		}
		l.mu.Unlock()
	}
	if !lat.IsEmpty() {
		p50, _ := lat.GetValueAtQuantile(0.5)
		p99, _ := lat.GetValueAtQuantile(0.99)
		res.LatencyP50ms, res.LatencyP99ms, res.LatencyMaxms = p50, p99, latMax
	}
	delays, _ := ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	for _, l := range watched {
		l.mu.Lock()
		delays.MergeWith(l.delays)
		res.DelayMaxms = max(res.DelayMaxms, l.delayMax)
		l.mu.Unlock()
	}
	if !delays.IsEmpty() {
		res.DelayP50ms, _ = delays.GetValueAtQuantile(0.5)
		res.DelayP99ms, _ = delays.GetValueAtQuantile(0.99)
		res.DelaySamples = int64(delays.GetCount())
	}
	res.HeldWithinP99 = res.Lost == 0 && (o.clients == 0 || res.LatencyP99ms <= float64(o.maxP99)/1e6)
	return res, nil
}

// baseline measures a bare paho subscriber (a child process running
// bareSubscriber) at one rate: what it received and its CPU per message.
func baseline(o options, work, name string, rate int) (Result, error) {
	res := Result{TargetRate: rate, Instances: 1}
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	cmd := exec.Command(os.Args[0], "-bare-subscriber", id, "-broker", o.broker, "-qos", strconv.Itoa(o.qos), "-baseline", o.baseline)
	cmd.Env = append(os.Environ(), "GODEBUG="+o.godebug)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		return res, fmt.Errorf("the bare subscriber did not start")
	}
	var received atomic.Int64
	go func() {
		for lines.Scan() {
			if n, err := strconv.ParseInt(lines.Text(), 10, 64); err == nil {
				received.Store(n)
			}
		}
	}()
	cpu0 := cpuTime(cmd.Process.Pid)
	start := time.Now()
	published, err := publish(o, rate, id)
	if err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	end := time.Now()
	for received.Load() < published && time.Since(end) < 10*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(end).Seconds()
	cpu := cpuTime(cmd.Process.Pid) - cpu0
	res.Seconds = elapsed.Seconds()
	res.Published, res.Received = published, received.Load()
	res.Stored = res.Received // nothing is stored: this counts what arrived
	res.Lost = max(res.Published-res.Received, 0)
	res.LostAtBroker = res.Lost
	res.BrokerDropped = -1
	res.SustainedRate = float64(res.Published) / elapsed.Seconds()
	if res.Received > 0 {
		res.CPUus = float64(cpu.Microseconds()) / float64(res.Received)
		res.CPUmsPer1000 = res.CPUus
	}
	res.PeakRSSMiB = float64(procKiB(cmd.Process.Pid, "VmHWM")) / 1024
	res.HeldWithinP99 = res.Lost == 0
	return res, nil
}

// bareSubscriber is the -baseline subscriber: a persistent session on the
// run's topics that counts what arrives (paho acknowledges each QoS 1
// message as its handler returns), prints "ready" once subscribed and then
// the count every 100 ms.
func bareSubscriber(o options) {
	var n atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(o.broker).SetClientID("citybench-bare-" + o.bareSubscriber).SetCleanSession(false).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { n.Add(1) })
	if o.baseline == "paho-buffered" {
		opts.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				return nil, err
			}
			return &bufferedReads{c, bufio.NewReaderSize(c, 64<<10)}, nil
		})
	}
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		log.Fatalf("bare subscriber: %v", tok.Error())
	}
	if tok := c.Subscribe("bench/"+o.bareSubscriber+"/#", byte(o.qos), nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		log.Fatalf("bare subscriber: %v", tok.Error())
	}
	fmt.Println("ready")
	for {
		time.Sleep(100 * time.Millisecond)
		fmt.Println(n.Load())
	}
}

type bufferedReads struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedReads) Read(p []byte) (int, error) { return b.r.Read(p) }

// publish sends the stream's numbered, timestamped readings for run id at
// rate over o.conns connections for o.duration, and returns how many the
// broker acknowledged.
func publish(o options, rate int, id string) (int64, error) {
	var published atomic.Int64
	var seq atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for c := 0; c < o.conns; c++ {
		cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(o.broker).SetClientID(fmt.Sprintf("citybench-pub-%s-%d", id, c)).
			SetMaxResumePubInFlight(1000).SetWriteTimeout(5 * time.Second))
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			cancel()
			wg.Wait()
			return 0, fmt.Errorf("publisher: %v", tok.Error())
		}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			defer cl.Disconnect(500)
			per := float64(rate) / float64(o.conns) / 100 // per 10 ms
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			owed := 0.0
			var pending []mqtt.Token
			for {
				select {
				case <-ctx.Done():
					for _, tok := range pending {
						if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
							published.Add(1)
						}
					}
					return
				case <-tick.C:
				}
				owed += per
				for ; owed >= 1; owed-- {
					n := seq.Add(1)
					now := time.Now()
					if n < int64(len(o.sentAt)) {
						o.sentAt[n].Store(now.UnixNano())
					}
					payload := o.st.payload(nil, n, now)
					pending = append(pending, cl.Publish(o.st.topic(id, n, c), byte(o.qos), false, payload))
				}
				// Count what the broker acknowledged, keeping the rest.
				kept := pending[:0]
				for _, tok := range pending {
					select {
					case <-tok.Done():
						if tok.Error() == nil {
							published.Add(1)
						}
					default:
						kept = append(kept, tok)
					}
				}
				pending = kept
			}
		}(c)
	}
	wg.Wait()
	return published.Load(), nil
}

// latencies are one websocket client's publish-to-frame delays in ms:
// its frames' freshness (ms), and its sample of readings' delays.
type latencies struct {
	mu sync.Mutex
	ms []float64
	// The per-reading delays: the highest number each seq panel showed,
	// and the readings this client samples, those whose number is rem
	// modulo step.
	seqPanels []string
	last      []int64
	sentAt    []atomic.Int64
	step, rem int64
	delays    *ddsketch.DDSketch
	delayMax  float64
}

// sampleStep is how many readings in one each client measures the delay
// of: a power of two that keeps all clients together to about 200,000
// samples a second, so that measuring costs citybench little beside
// cityscreen on the same cores.
func sampleStep(clients, rate int) int64 {
	step := int64(1)
	for int64(clients)*int64(rate)/step > 200_000 {
		step *= 2
	}
	return step
}

// reached records the delays of the sampled readings of seq panel f's
// feed from the last number it showed up to m, reflected by a frame
// received at now (unix ns).
func (l *latencies) reached(f int, m int64, now int64) {
	nf := int64(len(l.seqPanels))
	from := l.last[f] + 1
	if m < from {
		return
	}
	l.last[f] = m
	if l.sentAt == nil {
		return
	}
	// The first sampled number from "from" on, then every step.
	s := from + ((l.rem-from)%l.step+l.step)%l.step
	for ; s <= m && s < int64(len(l.sentAt)); s += l.step {
		if s%nf != int64(f) {
			continue
		}
		if t := l.sentAt[s].Load(); t > 0 {
			d := float64(now-t) / 1e6
			l.delays.Add(max(d, 0))
			l.delayMax = max(l.delayMax, d)
		}
	}
}

// watch reads the screen's frames until the connection ends. The time is
// taken as soon as a whole frame is read.
func (l *latencies) watch(c *websocket.Conn, frames *atomic.Int64) {
	l.warm()
	var buf bytes.Buffer
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		frames.Add(1)
		l.frame(buf.Bytes(), time.Now().UnixNano())
	}
}

// warm does once what the first frames measured would otherwise do for
// the first time: reading a frame takes strconv's large stack frame, so
// the stack grows now (a warm frame that measures nothing) and is kept
// (main turns the GC's shrinking off); and the delays' sketch takes its
// bins for delays from 100 ns to 1,000 s, which it keeps when cleared.
func (l *latencies) warm() {
	warm := `{"type":"update","panels":[{"id":"sent-warm","value":1.5}`
	for _, id := range l.seqPanels {
		warm += `,{"id":"` + id + `","value":0}`
	}
	l.frame([]byte(warm+"]}"), 0)
	if l.delays != nil {
		for d := 1e-4; d < 1e6; d *= 10 {
			l.delays.Add(d)
		}
	}
	l.reset()
}

// frame takes what a frame read at now (unix ns) shows: an update's
// "sent…" panels hold the newest reading's publish time in ms, and its
// sequence panels the newest reading's number, one panel a feed.
func (l *latencies) frame(b []byte, nowNs int64) {
	// Read in place: GetBytes copies what it returns, which for 10,000
	// clients is megabytes a frame for citybench's GC to collect on the
	// cores cityscreen shares. Nothing read outlives b.
	js := unsafe.String(unsafe.SliceData(b), len(b))
	if gjson.Get(js, "type").Str != "update" {
		return
	}
	now := float64(nowNs) / 1e6
	// cityscreen writes a panel's id first, so the panels are found by
	// searching for that (at memchr's speed) and only those measured are
	// parsed: parsing the whole of a city frame (5.7 KB, 12 panels) took
	// 6.4 us, 64 ms of citybench's CPU a frame at 10,000 clients, spent on
	// the cores cityscreen shares while its later clients wait. A frame
	// whose panels do not open so is parsed whole.
	const open = `{"id":"`
	found := false
	for i := 0; ; {
		j := strings.Index(js[i:], open)
		if j < 0 {
			break
		}
		found = true
		obj := js[i+j:]
		i += j + len(open)
		end := strings.IndexByte(js[i:], '"')
		if end < 0 {
			break
		}
		l.panel(js[i:i+end], obj, now, nowNs)
	}
	if found {
		return
	}
	gjson.Get(js, "panels").ForEach(func(_, p gjson.Result) bool {
		l.panel(p.Get("id").Str, p.Raw, now, nowNs)
		return true
	})
}

// panel takes what the panel id, whose JSON object begins obj, shows.
func (l *latencies) panel(id, obj string, now float64, nowNs int64) {
	if strings.HasPrefix(id, "sent") {
		if sent := gjson.Get(obj, "value"); sent.Type == gjson.Number {
			l.mu.Lock()
			l.ms = append(l.ms, now-sent.Num)
			l.mu.Unlock()
		}
		return
	}
	for f, name := range l.seqPanels {
		if id == name {
			if v := gjson.Get(obj, "value"); v.Type == gjson.Number {
				l.mu.Lock()
				l.reached(f, int64(v.Num), nowNs)
				l.mu.Unlock()
			}
			return
		}
	}
}

func (l *latencies) reset() {
	l.mu.Lock()
	l.ms = l.ms[:0]
	if l.delays != nil {
		l.delays.Clear()
	}
	l.delayMax = 0
	l.mu.Unlock()
}

// count counts the readings of run id in InfluxDB: its measurements are
// bench_ID, or bench_ID_ and the feed's kind.
func count(client influxdb2.Client, id string) int64 {
	q := fmt.Sprintf(`from(bucket: "city/autogen") |> range(start: -2h) |> filter(fn: (r) => r._measurement =~ /^bench_%s(_|$)/ and r._field == "seq") |> group() |> count()`, id)
	res, err := client.QueryAPI("-").Query(context.Background(), q)
	if err != nil {
		return 0
	}
	defer res.Close()
	var n int64
	for res.Next() {
		if v, ok := res.Record().Value().(int64); ok {
			n += v
		}
	}
	return n
}

// receivedAll is how many of the bench's readings the instances have
// received.
func receivedAll(ports []int, token string) int64 {
	var n int64
	for _, port := range ports {
		n += benchReceived(metrics(port, token))
	}
	return n
}

// benchReceived is how many of the bench's readings an instance's metrics
// say it has received.
func benchReceived(m map[string]float64) int64 {
	var n int64
	for k, v := range m {
		if strings.HasPrefix(k, "cityscreen_feed_messages_received_total") && isBenchFeed(k) {
			n += int64(v)
		}
	}
	return n
}

// metrics reads an instance's metrics: each sample's value by its name
// and labels as written.
func metrics(port int, token string) map[string]float64 {
	out := map[string]float64{}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			out[line[:i]] = v
		}
	}
	return out
}

// cpuTime is a process's user and system CPU time, from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks of 10 ms
}

// procKiB reads a memory line (VmRSS, VmHWM) of /proc/PID/status.
func procKiB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(port int) {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("nothing listens on %d", port)
}

func printRow(r Result) {
	log.Printf("rate %d: published %d, received %d, stored %d, lost %d (at the broker %d; the broker reported dropping %d), frame freshness p99 %.1f ms, CPU %.1f us/reading, commits over 25 ms %d, acks over 25 ms %d",
		r.TargetRate, r.Published, r.Received, r.Stored, r.Lost, r.LostAtBroker, r.BrokerDropped, r.LatencyP99ms, r.CPUus, r.SlowCommits, r.SlowAcks)
	if r.DelaySamples > 0 {
		log.Printf("rate %d: a reading's delay to each client (publish to the first frame that reflects it, %d samples): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
			r.TargetRate, r.DelaySamples, r.DelayP50ms, r.DelayP99ms, r.DelayMaxms)
	}
	if len(r.CPUByRole) > 0 {
		log.Printf("rate %d: CPU by role, us per published reading: %v", r.TargetRate, r.CPUByRole)
	}
}

func printTable(rs []Result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	// "delay" is each reading's delay to each client; "fresh" is each
	// frame's freshness (its newest reading's age), a different thing.
	fmt.Fprintln(w, "target/s\tpublished\treceived\tstored\tlost\tat broker\tsustained/s\tdrain s\tdelay p50 ms\tdelay p99 ms\tdelay max ms\tfresh p50 ms\tfresh p99 ms\tfresh max ms\tclients\tframes/s\tCPU us/reading\tpeak RSS MiB\tKiB/client\tcommits >25ms\tacks >25ms\tbroker drops\tstore conns\t")
	for _, r := range rs {
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.0f\t%.1f\t%.0f\t%.1f\t%d\t%d\t%d\t%d\t\n", r.TargetRate, r.Published, r.Received, r.Stored, r.Lost, r.LostAtBroker,
			r.SustainedRate, r.DrainSeconds, r.DelayP50ms, r.DelayP99ms, r.DelayMaxms, r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms, r.Clients, r.FramesPerSec, r.CPUus, r.PeakRSSMiB, r.PerClientKiB, r.SlowCommits, r.SlowAcks, r.BrokerDropped, r.StoreConns)
	}
	w.Flush()
}

// dropCount follows the broker's count of the messages it dropped because
// of its limits for the whole of citybench's work, as cityscreen does, so
// that a run's drops can be told from earlier runs'.
type dropCount struct {
	mu      sync.Mutex
	total   int64 // the broker's count as last reported
	known   bool  // total is the broker's count (a report came, or the broker is citybench's, fresh)
	stats   bool  // the broker's statistics have reached citybench
	reports int   // counts reported so far
}

func (d *dropCount) follow(broker string) {
	filters := ingest.StatsFilters()
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("citybench-stats-%d", os.Getpid())).
		SetAutoReconnect(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.stats = true
			if n, err := strconv.ParseInt(strings.TrimSpace(string(m.Payload())), 10, 64); err == nil && m.Topic() != ingest.UptimeTopic {
				d.total, d.known = n, true
				d.reports++
			}
		}).
		SetOnConnectHandler(func(c mqtt.Client) { c.SubscribeMultiple(filters, nil).Wait() })
	if tok := mqtt.NewClient(o).Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		log.Printf("not following the broker's dropped messages: %v", tok.Error())
	}
}

// mark is the count before a run, whether it is known, and how many
// reports had come.
func (d *dropCount) mark() (int64, bool, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total, d.known, d.reports
}

// since is what the broker dropped after mark gave total, known and
// reports; -1 when that cannot be told.
func (d *dropCount) since(total int64, known bool, reports int) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.stats:
		return -1
	case d.reports == reports:
		return 0 // the broker reports its count when it changes
	case known:
		return d.total - total
	}
	return -1
}
