package panel

import (
	"fmt"
	"time"

	"github.com/cityscreen/cityscreen/internal/feed"
)

// Playlist rotates a wall display through screens, each for its own time.
type Playlist struct {
	// ID names the playlist in URLs (wall.html?playlist=ID): [a-z0-9-].
	ID string `yaml:"id" json:"id"`
	// Title is shown to people; empty means the ID.
	Title string `yaml:"title" json:"title"`
	// Screens in the order they are shown.
	Screens []PlaylistEntry `yaml:"screens" json:"screens"`
}

// PlaylistEntry is one screen of a playlist.
type PlaylistEntry struct {
	Screen string `yaml:"screen" json:"screen"`
	// Duration the screen stays; 0 means 60s.
	Duration time.Duration `yaml:"duration" json:"duration"`
}

// MarshalJSON writes the duration as "90s".
func (e PlaylistEntry) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`{"screen":%q,"duration":%q,"seconds":%g}`, e.Screen, FormatDuration(e.Duration), e.Duration.Seconds())), nil
}

// WithDefaults fills in a playlist's defaults.
func (p Playlist) WithDefaults() Playlist {
	if p.Title == "" {
		p.Title = p.ID
	}
	entries := make([]PlaylistEntry, len(p.Screens))
	for i, e := range p.Screens {
		if e.Duration == 0 {
			e.Duration = time.Minute
		}
		entries[i] = e
	}
	p.Screens = entries
	return p
}

// Validate reports a playlist's problems against the screens there are.
func (p Playlist) Validate(screens map[string]bool) []feed.Problem {
	var ps []feed.Problem
	add := func(key, f string, a ...any) { ps = append(ps, feed.Problem{Key: key, Msg: fmt.Sprintf(f, a...)}) }
	if !feed.ValidID(p.ID) {
		add("id", "%q must be 1-63 characters of a-z, 0-9 and -", p.ID)
	}
	if len(p.Screens) == 0 {
		add("screens", "a playlist needs at least one screen")
	}
	for i, e := range p.Screens {
		key := fmt.Sprintf("screens.%d", i)
		if !screens[e.Screen] {
			add(key+".screen", "no screen has the ID %q", e.Screen)
		}
		if e.Duration < 5*time.Second {
			add(key+".duration", "%s is too short for anyone to read: at least 5s", e.Duration)
		}
	}
	return ps
}
