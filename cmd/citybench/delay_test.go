package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
)

// A frame whose seq panel shows m reflects each of its feed's readings up
// to m: each sampled one counts once, with its own publish time.
func TestReadingDelays(t *testing.T) {
	sent := make([]atomic.Int64, 100)
	for i := range sent {
		sent[i].Store(int64(i) * 1e6) // reading i published at i ms
	}
	l := &latencies{seqPanels: []string{"seq-air", "seq-traffic", "seq-heating"}, last: make([]int64, 3), sentAt: sent, step: 2, rem: 1}
	l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	l.reached(1, 10, 50e6) // traffic readings 1, 4, 7, 10; sampled: odd ones, 1 and 7
	if n := l.delays.GetCount(); n != 2 {
		t.Fatalf("%v samples, want 2", n)
	}
	if l.delayMax != 49 {
		t.Fatalf("max %v ms, want 49 (reading 1, published at 1 ms, reflected at 50)", l.delayMax)
	}
	l.reached(1, 10, 60e6) // nothing new
	l.reached(1, 13, 60e6) // 13
	if n := l.delays.GetCount(); n != 3 {
		t.Fatalf("%v samples, want 3", n)
	}
	if got := sampleStep(1000, 10000); got != 64 {
		t.Fatalf("sample step %d for 1,000 clients at 10,000/s, want 64", got)
	}
}

// Reading a frame allocates nothing once the client is warm, so that
// 10,000 clients do not make citybench's GC a part of what it measures.
func TestFrameAllocatesNothing(t *testing.T) {
	sent := make([]atomic.Int64, 1000)
	for i := range sent {
		sent[i].Store(1733367000200e6 - int64(i*i)*1e3) // reading i's delay: i*i us, to 0.64 s
	}
	l := &latencies{seqPanels: []string{"seq-air", "seq-traffic"}, last: make([]int64, 2), sentAt: sent, step: 1}
	l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	l.warm()
	l.ms = make([]float64, 0, 1000)
	// Each frame shows readings up to 20 further on, each a delay to add,
	// and longer than any before.
	var frames [][]byte
	for seq := 20; seq <= 800; seq += 20 {
		frames = append(frames, fmt.Appendf(nil, `{"type":"update","screen":"bench","seq":7,"panels":[{"id":"sent-air","title":"sent","value":1733367000123.5,"status":"ok"},{"id":"seq-air","value":%d},{"id":"seq-traffic","value":%d}]}`, seq, seq+1))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, b := range frames {
		l.frame(b, 1733367000200e6)
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n != 0 && !raceEnabled {
		t.Fatalf("%d allocations in %d frames, want 0", n, len(frames))
	}
	if len(l.ms) != len(frames) || l.ms[0] != 76.5 {
		t.Fatalf("freshness %v (of %d frames), want 76.5 ms each", l.ms[:1], len(l.ms))
	}
	if n := l.delays.GetCount(); n < 700 {
		t.Fatalf("%v delays, want the readings the frames showed", n)
	}
}

// A frame is read the same whether its panels open with their id, as
// cityscreen writes them (found by searching), or not (parsed whole).
func TestFrameSearchedOrParsed(t *testing.T) {
	frame, err := os.ReadFile("testdata/update.json") // an update of the city stream's screen, as cityscreen sent it
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type   string           `json:"type"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	reordered, err := json.Marshal(f) // map keys sorted: "agg" first, "id" later
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(reordered, []byte(`{"id":"`)) {
		t.Fatal("the reordered frame still opens a panel with its id")
	}
	read := func(b []byte) *latencies {
		sent := make([]atomic.Int64, 40000)
		for i := range sent {
			sent[i].Store(1796449318000e6 + int64(i)*1e4)
		}
		l := &latencies{seqPanels: []string{"seq-air", "seq-traffic", "seq-heating"}, last: make([]int64, 3), sentAt: sent, step: 7}
		l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
		l.frame(b, 1796449318500e6)
		return l
	}
	searched, parsed := read(frame), read(reordered)
	if len(searched.ms) != 3 || searched.last[0] != 29898 || searched.last[1] != 29869 || searched.last[2] != 29900 {
		t.Fatalf("searched: freshness %v, numbers %v; want 3 sent panels and numbers 29898, 29869, 29900", searched.ms, searched.last)
	}
	if fmt.Sprint(searched.ms, searched.last, searched.delays.GetCount(), searched.delayMax) !=
		fmt.Sprint(parsed.ms, parsed.last, parsed.delays.GetCount(), parsed.delayMax) {
		t.Fatalf("searched %v %v %v %v, parsed %v %v %v %v", searched.ms, searched.last, searched.delays.GetCount(), searched.delayMax,
			parsed.ms, parsed.last, parsed.delays.GetCount(), parsed.delayMax)
	}
}

// BenchmarkFrame is a client's reading of a city frame: citybench's
// CPU, on the cores cityscreen shares, for each frame at each client.
func BenchmarkFrame(b *testing.B) {
	frame, err := os.ReadFile("testdata/update.json")
	if err != nil {
		b.Fatal(err)
	}
	sent := make([]atomic.Int64, 1000)
	l := &latencies{seqPanels: []string{"seq-air", "seq-traffic", "seq-heating"}, last: make([]int64, 3), sentAt: sent, step: 64}
	l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	l.warm()
	b.SetBytes(int64(len(frame)))
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			l.reset()
		}
		l.frame(frame, 1796449318500e6)
	}
}
