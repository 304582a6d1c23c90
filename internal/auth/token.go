package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// Token kinds.
const (
	KindAPI     = "api"
	KindDisplay = "display"
)

// Token is an API or display token; its secret is shown once, at creation.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	Role      Role       `json:"role"`
	Screens   []string   `json:"screens,omitempty"`   // displays: the screens it may show
	Playlists []string   `json:"playlists,omitempty"` // displays: the playlists it may show
	Hash      string     `json:"hash,omitempty"`
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	LastFrom  string     `json:"last_from,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// SetBootstrapToken sets the administrator token given through the
// environment or config ("" for none). It is never stored.
func (m *Manager) SetBootstrapToken(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bootstrap = ""
	if token != "" {
		m.bootstrap = digest(token)
	}
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // api (default) or display
	Role      Role     `json:"role"` // displays are always viewers
	Screens   []string `json:"screens"`
	Playlists []string `json:"playlists"`
}

// CreateToken issues a token and returns its secret, the only time it is
// shown, with its record. exists checks a display's screens and playlists
// ("screen" or "playlist", and the ID).
func (m *Manager) CreateToken(req TokenRequest, by string, exists func(kind, id string) bool) (string, Token, error) {
	var problems []string
	if !nameRE.MatchString(req.Name) {
		problems = append(problems, fmt.Sprintf("name: %q is not a token name: lower-case letters, digits, '.', '_' and '-', at most 64", req.Name))
	}
	switch req.Kind {
	case "", KindAPI:
		req.Kind = KindAPI
		if req.Role < Viewer || req.Role > Admin {
			problems = append(problems, "role: want viewer, operator, engineer or admin")
		}
		if len(req.Screens) > 0 || len(req.Playlists) > 0 {
			problems = append(problems, "screens: only display tokens are bound to screens and playlists")
		}
	case KindDisplay:
		if req.Role != None && req.Role != Viewer {
			problems = append(problems, "role: a display token is always a viewer")
		}
		req.Role = Viewer
		if len(req.Screens) == 0 && len(req.Playlists) == 0 {
			problems = append(problems, "screens: a display token needs the screens (or playlists) it may show")
		}
		for i, s := range req.Screens {
			if !exists("screen", s) {
				problems = append(problems, fmt.Sprintf("screens.%d: no screen %q", i, s))
			}
		}
		for i, s := range req.Playlists {
			if !exists("playlist", s) {
				problems = append(problems, fmt.Sprintf("playlists.%d: no playlist %q", i, s))
			}
		}
	default:
		problems = append(problems, fmt.Sprintf("kind: %q: want api or display", req.Kind))
	}
	if len(problems) > 0 {
		return "", Token{}, errors.New(strings.Join(problems, "; "))
	}
	secret := NewToken()
	t := &Token{
		ID: "tok_" + newSecret(6), Name: req.Name, Kind: req.Kind, Role: req.Role, Screens: slices.Clone(req.Screens), Playlists: slices.Clone(req.Playlists),
		Hash: digest(secret), Created: m.opts.Now().UTC(), CreatedBy: by,
	}
	out := *t
	if err := m.commit(change{sharedToken, t.ID, t}); err != nil {
		return "", Token{}, err
	}
	out.Hash = ""
	return secret, out, nil
}

// Tokens lists the tokens (revoked ones too), without their hashes; kind
// "" means all kinds.
func (m *Manager) Tokens(kind string) []Token {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Token{}
	for _, t := range m.tokens {
		if kind == "" || t.Kind == kind {
			c := *t
			c.Hash = ""
			out = append(out, c)
		}
	}
	return out
}

// RevokeToken revokes a token at once: requests with it are refused and
// its open websockets are closed.
func (m *Manager) RevokeToken(id, by string) (Token, error) {
	m.mu.Lock()
	var t Token
	for _, cur := range m.tokens {
		if cur.ID == id {
			t = *cur
		}
	}
	m.mu.Unlock()
	if t.ID == "" {
		return Token{}, ErrNotFound
	}
	if t.Revoked == nil {
		now := m.opts.Now().UTC()
		t.Revoked, t.RevokedBy = &now, by
		t.LastUsed, t.LastFrom = nil, ""
		if err := m.commit(change{sharedToken, id, &t}); err != nil {
			return Token{}, err
		}
	} else {
		m.mu.Lock()
		m.announceLocked("token:" + id)
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cur := range m.tokens {
		if cur.ID == id {
			t = *cur
		}
	}
	t.Hash = ""
	return t, nil
}
