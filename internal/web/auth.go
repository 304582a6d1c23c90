package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken lets a request through only with the admin token: as
// "Authorization: Bearer TOKEN", or, on the websocket (which browsers open
// without headers), as ?token=TOKEN. Tokens are compared in constant time.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && r.URL.Path == "/ws" {
			got, ok = r.URL.Query().Get("token"), true
		}
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cityscreen"`)
			writeError(w, http.StatusUnauthorized, "authentication required: give the admin token as Authorization: Bearer")
			return
		}
		next.ServeHTTP(w, r)
	})
}
