package web

import (
	"testing"

	"go.uber.org/goleak"
)

// The test clients' idle keep-alive connections are the client's, not
// the server's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}
