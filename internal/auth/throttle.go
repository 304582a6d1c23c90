package auth

import (
	"strings"
	"sync"
	"time"
)

// throttle slows and locks out failed sign-ins, per key: an account as
// signed into from unknown clients ("user:"), a client address ("addr:"),
// and a trusted device or address of one account ("device:", "known:").
// An attempt is counted when it begins, before its password is checked,
// so that concurrent attempts cannot get past the limit.
type throttle struct {
	opts Options

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	times    []time.Time // failures within the window
	inflight int         // attempts begun and not yet ended
	locked   time.Time   // refused until then
}

func newThrottle(opts Options) *throttle {
	return &throttle{opts: opts, keys: map[string]*failures{}}
}

func (t *throttle) limit(key string) int {
	if strings.HasPrefix(key, "addr:") {
		return t.opts.AddressAttempts
	}
	return t.opts.AccountAttempts
}

// begin counts an attempt under each key, or refuses it, returning how
// long to wait: while a key is locked, or while its recent failures and
// the attempts in flight already reach its limit (then for a second: the
// attempts in flight may still succeed).
func (t *throttle) begin(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		f := t.keys[k]
		if f == nil {
			continue
		}
		if f.locked.After(now) {
			wait = max(wait, f.locked.Sub(now))
			continue
		}
		f.times = recent(f.times, now, t.opts.LockoutWindow)
		if n := t.limit(k); n > 0 && len(f.times)+f.inflight >= n {
			wait = max(wait, time.Second)
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		f := t.keys[k]
		if f == nil {
			f = &failures{}
			t.keys[k] = f
		}
		f.inflight++
	}
	return 0
}

// fail ends a failed attempt under each key, locks those at their limit,
// and returns how long to hold the answer: 250 ms per recent failure
// under the first key, at most 2 s.
func (t *throttle) fail(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var delay time.Duration
	for i, k := range keys {
		f := t.keys[k]
		if f == nil {
			f = &failures{}
			t.keys[k] = f
		}
		f.inflight = max(f.inflight-1, 0)
		f.times = append(recent(f.times, now, t.opts.LockoutWindow), now)
		if i == 0 {
			delay = min(time.Duration(len(f.times))*250*time.Millisecond, 2*time.Second)
		}
		if n := t.limit(k); n > 0 && len(f.times) >= n {
			f.locked = now.Add(t.opts.Lockout)
			f.times = nil
		}
	}
	return delay
}

// succeed ends a successful attempt: the first key's failures are
// forgotten (an account's or a device's; an address's stay, so that one
// good account does not reset an address's count).
func (t *throttle) succeed(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range keys {
		if i == 0 {
			delete(t.keys, k)
			continue
		}
		if f := t.keys[k]; f != nil {
			f.inflight = max(f.inflight-1, 0)
		}
	}
}

// cancel ends an attempt that was never checked (the server was busy).
func (t *throttle) cancel(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if f := t.keys[k]; f != nil {
			f.inflight = max(f.inflight-1, 0)
		}
	}
}

func (t *throttle) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.keys {
		f.times = recent(f.times, now, t.opts.LockoutWindow)
		if len(f.times) == 0 && f.inflight == 0 && !f.locked.After(now) {
			delete(t.keys, k)
		}
	}
}

func recent(times []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(times) && now.Sub(times[i]) > window {
		i++
	}
	return times[i:]
}
