// Package testkit is what the tests of several packages share: waiting
// for a condition that real services make true in their own time, and a
// free loopback address. Only tests import it.
package testkit

import (
	"net"
	"testing"
	"time"
)

// WaitFor checks cond every 20 ms until it holds, and fails the test if it
// does not within d. A cond that asks cityscreen's API then asks it fewer
// than 50 times a second, the limit the server sets each client
// (auth.api_rate).
func WaitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr is a loopback address ("127.0.0.1:port") that nothing listened
// on a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
