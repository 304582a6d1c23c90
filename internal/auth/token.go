package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// TokenPrefix starts every token cityscreen issues, so that a leaked one is
// recognisable (and findable by secret scanners).
const TokenPrefix = "cst_"

// tokenBytes is a token's randomness: 256 bits.
const tokenBytes = 32

var b64url = base64.RawURLEncoding

// ErrMalformedToken is a bearer value that is not one of cityscreen's tokens.
var ErrMalformedToken = errors.New("auth: not a cityscreen token")

// newSecret returns a fresh random value of n bytes, base64url-encoded.
func newSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("auth: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return b64url.EncodeToString(b)
}

// NewToken returns a new token's secret.
func NewToken() string { return TokenPrefix + newSecret(tokenBytes) }

// ParseToken checks that s has the shape of an issued token (prefix and 256
// bits of base64url) before it is looked up.
func ParseToken(s string) error {
	body, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok || len(body) != b64url.EncodedLen(tokenBytes) {
		return ErrMalformedToken
	}
	if b, err := b64url.DecodeString(body); err != nil || len(b) != tokenBytes {
		return ErrMalformedToken
	}
	return nil
}

// digest is what is stored of a secret: its SHA-256. Tokens and session
// IDs carry 256 random bits, so a fast hash is enough; passwords use
// argon2id.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
