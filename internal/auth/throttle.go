package auth

import (
	"sync"
	"time"
)

// throttle slows and locks out failed sign-ins, per account and per
// address. A lock applies to a key; a sign-in is refused while any of its
// keys is locked.
type throttle struct {
	opts Options

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	times  []time.Time // failures within the window
	locked time.Time   // refused until then
}

func newThrottle(opts Options) *throttle {
	return &throttle{opts: opts, keys: map[string]*failures{}}
}

func (t *throttle) limit(key string) int {
	if len(key) > 5 && key[:5] == "addr:" {
		return t.opts.AddressAttempts
	}
	return t.opts.AccountAttempts
}

// locked returns how long the longest lock among keys still lasts.
func (t *throttle) locked(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if f := t.keys[k]; f != nil && f.locked.After(now) && f.locked.Sub(now) > wait {
			wait = f.locked.Sub(now)
		}
	}
	return wait
}

// fail records a failure under each key, locks those at their limit, and
// returns how long to hold the answer: 250 ms per recent failure of the
// account, at most 2 s.
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

// succeed clears an account's failures.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

func (t *throttle) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.keys {
		f.times = recent(f.times, now, t.opts.LockoutWindow)
		if len(f.times) == 0 && !f.locked.After(now) {
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
