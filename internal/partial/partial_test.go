package partial

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Partials of random splits of a stream merge into exactly what the
// whole stream gives: count, sum, minimum, maximum and every quantile.
func TestMergeEqualsWhole(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for c := 0; c < 50; c++ {
		bucket := time.Unix(1_700_000_000+int64(c), 0)
		whole := New("p", map[string]string{"district": "daoli"}, bucket)
		shares := []*Partial{}
		for i := 0; i < 1+r.IntN(5); i++ {
			shares = append(shares, New("p", map[string]string{"district": "daoli"}, bucket))
		}
		for i := 0; i < r.IntN(2000); i++ {
			v := float64(r.IntN(100000)) / 10
			whole.Add(v)
			shares[r.IntN(len(shares))].Add(v)
		}
		merged := New("p", map[string]string{"district": "daoli"}, bucket)
		for _, s := range shares {
			// Through the wire, as a screen instance would get them.
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var got Partial
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := merged.Merge(&got); err != nil {
				t.Fatal(err)
			}
		}
		same(t, whole, merged)
	}
	a, b := New("p", nil, time.Unix(0, 0)), New("p", nil, time.Unix(1, 0))
	if a.Merge(b) == nil {
		t.Fatal("partials of different buckets merged")
	}
	var bad Partial
	for _, in := range []string{`{}`, `{"panel":"p","count":2,"sum":1,"min":1,"max":1,"sketch":""}`, `{"panel":"p","count":-1}`} {
		if bad.UnmarshalJSON([]byte(in)) == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func same(t *testing.T, want, got *Partial) {
	t.Helper()
	if want.Count != got.Count || want.Min != got.Min && want.Count > 0 || want.Max != got.Max && want.Count > 0 {
		t.Fatalf("count/min/max: want %v/%v/%v, got %v/%v/%v", want.Count, want.Min, want.Max, got.Count, got.Min, got.Max)
	}
	if d := want.Sum - got.Sum; d > 1e-6*max(1, want.Sum) || d < -1e-6*max(1, want.Sum) {
		t.Fatalf("sum: want %v, got %v", want.Sum, got.Sum)
	}
	if want.Count == 0 {
		return
	}
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
		w, _ := want.Quantile(q)
		g, _ := got.Quantile(q)
		if w != g {
			t.Fatalf("p%v: want %v, got %v", q*100, w, g)
		}
	}
}

// The demonstration of docs/scaling.md against a real Mosquitto: two
// ingest shards take a stream through a shared subscription, each
// aggregates its share into partials per district and second, and
// publishes them back through the broker; a screen instance merges the
// partials and gets what one instance computes over the whole stream,
// from a small fraction of the messages.
func TestPartialsThroughTheBroker(t *testing.T) {
	url := os.Getenv("CITYSCREEN_TEST_MQTT_URL")
	if url == "" {
		t.Fatal("CITYSCREEN_TEST_MQTT_URL is not set: this test needs a broker (make test starts one)")
	}
	run := fmt.Sprintf("partial-%d", time.Now().UnixNano())
	connect := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(run + "-" + id).SetOrderMatters(false))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connecting %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	type reading struct {
		District string  `json:"district"`
		Value    float64 `json:"value"`
		Time     int64   `json:"ts"` // unix ms
	}
	bucketOf := func(ms int64) time.Time { return time.UnixMilli(ms).Truncate(time.Second) }

	// The shards: each keeps partials of the readings it is given.
	type shard struct {
		mu       sync.Mutex
		partials map[string]*Partial
		n        int
	}
	shards := []*shard{{partials: map[string]*Partial{}}, {partials: map[string]*Partial{}}}
	shardClients := make([]mqtt.Client, len(shards))
	for i, s := range shards {
		c := connect(fmt.Sprintf("shard-%d", i))
		shardClients[i] = c
		tok := c.Subscribe("$share/"+run+"/"+run+"/readings/#", 1, func(_ mqtt.Client, m mqtt.Message) {
			var r reading
			if err := json.Unmarshal(m.Payload(), &r); err != nil {
				t.Errorf("shard: %v", err)
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			p := New("pm25-by-district", map[string]string{"district": r.District}, bucketOf(r.Time))
			if old, ok := s.partials[p.Key()]; ok {
				p = old
			} else {
				s.partials[p.Key()] = p
			}
			p.Add(r.Value)
			s.n++
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribing: %v", tok.Error())
		}
	}

	// The screen instance: merges every partial it gets.
	var mu sync.Mutex
	merged := map[string]*Partial{}
	partialMessages := 0
	screen := connect("screen")
	if tok := screen.Subscribe(run+"/partials/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		var p Partial
		if err := json.Unmarshal(m.Payload(), &p); err != nil {
			t.Errorf("screen: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		partialMessages++
		if old, ok := merged[p.Key()]; ok {
			if err := old.Merge(&p); err != nil {
				t.Error(err)
			}
			return
		}
		merged[p.Key()] = &p
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}

	// The stream, and what one instance would compute over all of it.
	districts := []string{"daoli", "nangang", "daowai", "xiangfang", "songbei", "pingfang"}
	whole := map[string]*Partial{}
	pub := connect("publisher")
	r := rand.New(rand.NewPCG(3, 4))
	const readings = 12000
	base := time.Now().Truncate(time.Second).Add(-time.Minute).UnixMilli()
	for i := 0; i < readings; i++ {
		rd := reading{District: districts[r.IntN(len(districts))], Value: float64(r.IntN(5000)) / 10, Time: base + int64(i)}
		b, _ := json.Marshal(rd)
		if tok := pub.Publish(run+"/readings/"+rd.District, 1, false, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing: %v", tok.Error())
		}
		p := New("pm25-by-district", map[string]string{"district": rd.District}, bucketOf(rd.Time))
		if old, ok := whole[p.Key()]; ok {
			p = old
		} else {
			whole[p.Key()] = p
		}
		p.Add(rd.Value)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		shards[0].mu.Lock()
		shards[1].mu.Lock()
		n := shards[0].n + shards[1].n
		shards[1].mu.Unlock()
		shards[0].mu.Unlock()
		if n == readings {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shards got %d of %d readings", n, readings)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Each shard publishes its partials (in a running system: each bucket
	// once it closes, and again if a late reading changes it).
	published := 0
	for i, s := range shards {
		s.mu.Lock()
		if s.n == 0 {
			t.Errorf("shard %d got no share of the stream", i)
		}
		t.Logf("shard %d took %d readings into %d partials", i, s.n, len(s.partials))
		for _, p := range s.partials {
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if tok := shardClients[i].Publish(fmt.Sprintf("%s/partials/%d", run, i), 1, false, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publishing a partial: %v", tok.Error())
			}
			published++
		}
		s.mu.Unlock()
	}
	waitMerged := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := partialMessages
		mu.Unlock()
		if got == published {
			break
		}
		if time.Now().After(waitMerged) {
			t.Fatalf("the screen got %d of %d partials", got, published)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(merged) != len(whole) {
		t.Fatalf("%d merged groups and buckets, want %d", len(merged), len(whole))
	}
	for k, w := range whole {
		same(t, w, merged[k])
	}
	t.Logf("%d readings through the shards; the screen merged %d partials (%.1f%% of the messages) into %d district-seconds equal to the whole stream's",
		readings, published, 100*float64(published)/readings, len(merged))
}
