package web

import (
	"cmp"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cityscreen/cityscreen/internal/hub"
)

// bodyTimeout bounds how long a request may take to arrive, its body
// included: a client that sends it a byte at a time is cut off. It also
// ends the request's context once passed (net/http's background read
// meets the deadline), so it is longer than the longest answer, a 30 s
// topic preview.
const bodyTimeout = 60 * time.Second

// realClient puts the client's own address in r.RemoteAddr, for the
// limits, the lockouts and the audit log: the connection's address, or,
// when that is a trusted proxy, the address the proxies say they served
// (Forwarded, else X-Forwarded-For), read from the right and skipping
// trusted proxies, so that a client cannot name itself. It also bounds
// how long a request's body may take, except a websocket's.
func (s *server) realClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.TrustedProxies) > 0 {
			if addr, ok := s.forwardedFor(r); ok {
				r.RemoteAddr = net.JoinHostPort(addr.String(), "0")
			}
		}
		if r.Header.Get("Upgrade") == "" {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(cmp.Or(s.BodyTimeout, bodyTimeout)))
		}
		if s.TLS || strings.HasPrefix(s.PublicOrigin, "https://") {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor is the client's address behind trusted proxies; ok is
// false when the connection is not from one.
func (s *server) forwardedFor(r *http.Request) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.trusted(peer.Addr()) {
		return netip.Addr{}, false
	}
	hops := forwardedHops(r.Header)
	client := peer.Addr().Unmap()
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(hops[i])
		if err != nil {
			break // what a client wrote: the last proxy's word stands
		}
		client = a
		if !s.trusted(a) {
			break
		}
	}
	return client, true
}

// forwardedHops are the addresses of the Forwarded header's for= (RFC
// 7239), or else of X-Forwarded-For, oldest first.
func forwardedHops(h http.Header) []string {
	var hops []string
	if fw := h.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for elem := range strings.SplitSeq(line, ",") {
				for pair := range strings.SplitSeq(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						hops = append(hops, v)
					}
				}
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(line, ",") {
			hops = append(hops, hop)
		}
	}
	return hops
}

// parseHop reads one hop's address: 192.0.2.1, "[2001:db8::1]:4711",
// 192.0.2.1:4711.
func parseHop(s string) (netip.Addr, error) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap(), err
}

// sameOrigin accepts a request a browser sent from one of the server's
// own pages: an Origin that is the public origin (http.public_url) when
// one is set, else the server's own as the request names it, or one of
// http.allowed_origins, each compared exactly. A request without Origin
// passes unless Sec-Fetch-Site calls it cross-site: programs send
// neither, and cannot be made to by another site.
func (s *server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		site := r.Header.Get("Sec-Fetch-Site")
		return site == "" || site == "same-origin" || site == "none"
	}
	return hub.OriginAllowed(origin, r, s.PublicOrigin, s.AllowedOrigins)
}

// sockets counts each client address's open websockets.
type sockets struct {
	mu   sync.Mutex
	open map[string]int
}

// take holds a place for one more of addr's websockets, unless it has max.
func (c *sockets) take(addr string, max int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[string]int{}
	}
	if max > 0 && c.open[addr] >= max {
		return nil, false
	}
	c.open[addr]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.open[addr]--; c.open[addr] <= 0 {
			delete(c.open, addr)
		}
	}, true
}
