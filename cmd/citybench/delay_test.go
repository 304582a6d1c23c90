package main

import (
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

// Reading a frame allocates nothing, so that 10,000 clients do not make
// citybench's GC a part of what it measures.
func TestFrameAllocatesNothing(t *testing.T) {
	sent := make([]atomic.Int64, 100)
	l := &latencies{seqPanels: []string{"seq-air", "seq-traffic"}, last: make([]int64, 2), sentAt: sent, step: 1}
	l.delays, _ = ddsketch.LogCollapsingLowestDenseDDSketch(0.01, 2048)
	l.ms = make([]float64, 0, 1000)
	b := []byte(`{"type":"update","screen":"bench","seq":7,"panels":[{"id":"sent-air","title":"sent","value":1733367000123.5,"status":"ok"},{"id":"seq-air","value":0},{"id":"seq-traffic","value":0}]}`)
	if n := testing.AllocsPerRun(100, func() { l.frame(b, 1733367000200e6) }); n != 0 {
		t.Fatalf("%v allocations a frame, want 0", n)
	}
	if len(l.ms) != 101 || l.ms[0] != 76.5 {
		t.Fatalf("freshness %v (of %d frames), want 76.5 ms each", l.ms[:1], len(l.ms))
	}
}
