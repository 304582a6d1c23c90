package auth

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSignInBurst: 200 sign-ins at once from 200 addresses, with
// wrong passwords for one user (one-user) or for 200 names (many-users).
// It reports how many passwords were checked, how many were answered
// busy, and the peak heap while the burst ran: bounded by MaxHashing
// times argon2id's 19 MiB.
func BenchmarkSignInBurst(b *testing.B) {
	b.Run("one-user", func(b *testing.B) { burst(b, func(i int) string { return "zhang" }) })
	b.Run("many-users", func(b *testing.B) { burst(b, func(i int) string { return fmt.Sprintf("user%d", i) }) })
}

func burst(b *testing.B, user func(i int) string) {
	for b.Loop() {
		c := &clock{t: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
		m := open(b, b.TempDir(), c)
		m.CreateUser("zhang", Admin, pw)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		var sampled sync.WaitGroup
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}()
		var wg sync.WaitGroup
		var checked, busy atomic.Int32
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch _, _, err := login(m, user(i), fmt.Sprintf("guess %d", i), fmt.Sprintf("10.8.%d.%d", i/250, i%250), ""); err {
				case ErrBadCredentials:
					checked.Add(1)
				case ErrBusy:
					busy.Add(1)
				}
			}()
		}
		wg.Wait()
		close(stop)
		sampled.Wait()
		b.ReportMetric(float64(checked.Load()), "checked/burst")
		b.ReportMetric(float64(busy.Load()), "busy/burst")
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "peak-heap-MiB")
	}
}
