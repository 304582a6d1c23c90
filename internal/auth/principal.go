package auth

import "slices"

// Principal is who a request comes from.
type Principal struct {
	Kind    string // "user", "token", "display" or "bootstrap"
	Name    string // the user's name or the token's
	ID      string // the token's ID; for a user, the session's
	Role    Role
	Screens []string // for a display: the screens it may show
	// Playlists a display may show (and so their screens).
	Playlists []string
	// CSRF is the session's anti-forgery value, when the request came with
	// the session cookie (and must then repeat it in X-CSRF-Token to
	// change anything).
	CSRF string
}

// DisplayName is how people know the principal: a user's or a token's name,
// "admin-token" for the bootstrap token. Screens show it (who
// acknowledged an alert); the audit log keeps Actor.
func (p *Principal) DisplayName() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.Kind == "bootstrap":
		return "admin-token"
	}
	return p.Name
}

// Actor names the principal in the audit log.
func (p *Principal) Actor() string {
	if p == nil {
		return "anonymous"
	}
	switch p.Kind {
	case "user":
		return "user:" + p.Name
	case "bootstrap":
		return "admin-token"
	default:
		return p.Kind + ":" + p.Name + " (" + p.ID + ")"
	}
}

// CanSee tells whether the principal may see a screen; playlist gives the
// screens of a playlist, for displays bound to playlists.
func (p *Principal) CanSee(screen string, playlist func(id string) []string) bool {
	if p == nil || p.Role < Viewer {
		return false
	}
	if p.Kind != KindDisplay || slices.Contains(p.Screens, screen) {
		return true
	}
	for _, id := range p.Playlists {
		if playlist != nil && slices.Contains(playlist(id), screen) {
			return true
		}
	}
	return false
}

// CanPlay tells whether the principal may show a playlist.
func (p *Principal) CanPlay(playlist string) bool {
	if p == nil || p.Role < Viewer {
		return false
	}
	return p.Kind != KindDisplay || slices.Contains(p.Playlists, playlist)
}

// watchKey is what revocation is announced under.
func (p *Principal) watchKey() string {
	switch p.Kind {
	case "user":
		return "user:" + p.Name
	case "bootstrap":
		return ""
	default:
		return "token:" + p.ID
	}
}
