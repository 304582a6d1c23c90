package auth

import (
	"encoding/json"
	"fmt"
)

// Role is what a principal may do. Each role may do everything the roles
// below it may.
type Role int

const (
	// None is no role: the anonymous caller, allowed only public routes.
	None Role = iota
	// Viewer sees screens, read-only.
	Viewer
	// Operator also acknowledges alerts.
	Operator
	// Engineer also manages feeds and their rejected messages.
	Engineer
	// Admin also manages users, tokens and displays and reads the audit log.
	Admin
)

var roleNames = [...]string{"none", "viewer", "operator", "engineer", "admin"}

func (r Role) String() string {
	if r < None || r > Admin {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role's name; "none" is not a role one can be given.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && n == s {
			return Role(i), nil
		}
	}
	return None, fmt.Errorf("%q is not a role: want viewer, operator, engineer or admin", s)
}

// Roles lists the roles one can be given, lowest first.
func Roles() []Role { return []Role{Viewer, Operator, Engineer, Admin} }

func (r Role) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

func (r *Role) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseRole(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}
