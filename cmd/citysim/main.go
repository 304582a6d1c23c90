// Command citysim publishes realistic Harbin city feeds over MQTT: air
// quality, traffic, district heating (as InfluxDB line protocol), snow
// clearing, public transport, 12345 hotline and e Ice City requests, and
// government services, shaped by the time of day in Asia/Shanghai.
//
//	citysim [-broker URL] [-rate N] [-conns N] [-garbage F] [-duration D] [-feeds IDS]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1884", "MQTT broker URL")
	rate := flag.Float64("rate", 50, "messages per second, across all feeds")
	conns := flag.Int("conns", 1, "MQTT connections to publish over")
	qos := flag.Int("qos", 1, "MQTT QoS of the publications (0 or 1)")
	garbageShare := flag.Float64("garbage", 0, "share of publications that are malformed, to see rejections (0-1)")
	duration := flag.Duration("duration", 0, "stop after this long; 0 runs until interrupted")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	only := flag.String("feeds", "", "publish only these feeds, comma-separated IDs (citizen-cases); empty means all")
	history := flag.Int("history", 300, "citizen requests opened over the two hours before the start, their events so far published at once")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *rate <= 0 || *conns < 1 || *qos < 0 || *qos > 1 || *garbageShare < 0 || *garbageShare > 1 || *history < 0 {
		fmt.Fprintln(os.Stderr, "citysim: -rate must be > 0, -conns >= 1, -qos 0 or 1, -garbage within 0-1, -history >= 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	gens, err := selectGenerators(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "citysim:", err)
		os.Exit(2)
	}
	if !slices.ContainsFunc(gens, func(g generator) bool { return g.feed == "citizen-cases" }) {
		*history = 0
	}
	if err := run(ctx, log, gens, *broker, *rate, *conns, byte(*qos), *garbageShare, *seed, *history); err != nil {
		log.Error("citysim stopped", "err", err)
		os.Exit(1)
	}
}

// selectGenerators are the generators of the feeds named (all for "").
func selectGenerators(only string) ([]generator, error) {
	if only == "" {
		return generators, nil
	}
	var out []generator
	for id := range strings.SplitSeq(only, ",") {
		i := slices.IndexFunc(generators, func(g generator) bool { return g.feed == id })
		if i < 0 {
			return nil, fmt.Errorf("-feeds: no feed %q", id)
		}
		out = append(out, generators[i])
	}
	return out, nil
}

func run(ctx context.Context, log *slog.Logger, gens []generator, broker string, rate float64, conns int, qos byte, garbageShare float64, seed uint64, history int) error {
	clients := make([]mqtt.Client, conns)
	for i := range clients {
		o := mqtt.NewClientOptions().AddBroker(broker).
			SetClientID(fmt.Sprintf("citysim-%d-%d", os.Getpid(), i)).
			SetConnectRetry(true).SetAutoReconnect(true).SetMaxReconnectInterval(5 * time.Second).
			SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		for !tok.WaitTimeout(5 * time.Second) {
			log.Info("waiting for the broker", "broker", broker)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if tok.Error() != nil {
			return tok.Error()
		}
		defer c.Disconnect(500)
		clients[i] = c
	}
	if history > 0 {
		msgs := demoCases.history(rand.New(rand.NewPCG(seed, 1<<32)), time.Now(), history)
		toks := make([]mqtt.Token, len(msgs))
		for i, m := range msgs {
			toks[i] = clients[0].Publish(m.topic, qos, false, m.payload)
		}
		for _, tok := range toks {
			if tok.Wait(); tok.Error() != nil {
				return fmt.Errorf("publishing the requests' history: %w", tok.Error())
			}
		}
		log.Info("published the citizen requests' history", "requests", history, "events", len(msgs))
	}
	log.Info("publishing Harbin feeds", "broker", broker, "rate", rate, "conns", conns)

	var published, failed atomic.Uint64
	var wg sync.WaitGroup
	perConn := rate / float64(conns)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishLoop(ctx, c, gens, rand.New(rand.NewPCG(seed, uint64(i))), perConn, qos, garbageShare, &published, &failed)
		}()
	}
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	last, lastAt := uint64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			log.Info("stopped", "published", published.Load(), "failed", failed.Load())
			return nil
		case now := <-report.C:
			n := published.Load()
			log.Info("published", "total", n, "per_second", fmt.Sprintf("%.0f", float64(n-last)/now.Sub(lastAt).Seconds()), "failed", failed.Load())
			last, lastAt = n, now
		}
	}
}

// publishLoop publishes at rate messages per second, in 10 ms steps, with
// at most a window of unacknowledged QoS 1 publications in flight.
func publishLoop(ctx context.Context, c mqtt.Client, generators []generator, r *rand.Rand, rate float64, qos byte, garbageShare float64, published, failed *atomic.Uint64) {
	const step = 10 * time.Millisecond
	tick := time.NewTicker(step)
	defer tick.Stop()
	total := 0.0
	for _, g := range generators {
		total += g.weight
	}
	start := time.Now()
	var sent float64
	var window []mqtt.Token
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := rate*now.Sub(start).Seconds() - sent
			for ; due >= 1; due-- {
				var m message
				if garbageShare > 0 && r.Float64() < garbageShare {
					m = garbage(r)
				} else {
					x := r.Float64() * total
					for _, g := range generators {
						if x < g.weight {
							m = g.make(r, now)
							break
						}
						x -= g.weight
					}
				}
				if m.topic == "" { // rounding left x past the last weight
					m = generators[len(generators)-1].make(r, now)
				}
				window = append(window, c.Publish(m.topic, qos, false, m.payload))
				sent++
				if len(window) >= 1000 {
					settle(ctx, window, published, failed)
					window = window[:0]
				}
			}
			settle(ctx, window, published, failed)
			window = window[:0]
		}
	}
}

// settle waits, 10 s at most in all and no longer than ctx, for the broker
// to acknowledge a window of publications, and counts them: those not
// acknowledged by then count as failed.
func settle(ctx context.Context, window []mqtt.Token, published, failed *atomic.Uint64) {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	waiting := true
	for _, tok := range window {
		if waiting {
			select {
			case <-tok.Done():
			case <-deadline.C:
				waiting = false
			case <-ctx.Done():
				waiting = false
			}
		}
		select {
		case <-tok.Done():
			if tok.Error() == nil {
				published.Add(1)
				continue
			}
		default:
		}
		failed.Add(1)
	}
}
