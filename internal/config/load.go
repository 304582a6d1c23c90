package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cityscreen/cityscreen/internal/citymap"

	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/panel"
)

// Problem is one thing wrong with the configuration, where it is.
type Problem struct {
	File string
	Line int // 0 when the problem has no line (a missing file, an environment variable)
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Error lists every problem found, one per line.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the main file, applies the environment (a map of
// CITYSCREEN_* variables, usually from os.Environ), fills in defaults, then
// reads feeds/*.yaml and screens/*.yaml beside the main file. Every problem
// found is returned in one *Error.
func Load(path string, env map[string]string) (*Config, error) {
	var ps []Problem
	cfg := &Config{File: path, Env: env}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{[]Problem{{File: path, Msg: err.Error()}}}
	}
	node, decodeProblems := decodeStrict(path, data, cfg)
	ps = append(ps, decodeProblems...)
	fromEnv, envProblems := applyEnv(cfg, env)
	ps = append(ps, envProblems...)
	cfg.SetDefaults()
	for _, p := range cfg.validate() {
		if name, ok := fromEnv[p.Key]; ok {
			ps = append(ps, Problem{File: name, Msg: p.Msg})
			continue
		}
		ps = append(ps, Problem{File: path, Line: lineOf(node, p.Key), Msg: p.Key + ": " + p.Msg})
	}

	if f := env[EnvPrefix+"AUTH_AUDIT_KEY_FILE"]; f != "" && within(cfg.State.Dir, f) {
		ps = append(ps, Problem{File: EnvPrefix + "AUTH_AUDIT_KEY_FILE", Msg: "the audit key must be kept outside the state directory: whoever can rewrite the log must not be able to read it"})
	}
	dir := filepath.Dir(path)
	feeds, feedProblems := loadFeeds(filepath.Join(dir, "feeds"))
	ps = append(ps, feedProblems...)
	cfg.Feeds = feeds
	byID := make(map[string]feed.Spec, len(feeds))
	for _, f := range feeds {
		byID[f.ID] = f
	}
	registered, regProblems := LoadRegistry(RegistryPath(cfg.State.Dir))
	for _, spec := range registered {
		if _, dup := byID[spec.ID]; dup {
			regProblems = append(regProblems, Problem{File: RegistryPath(cfg.State.Dir), Msg: fmt.Sprintf("feed %q is also defined in feeds/", spec.ID)})
			continue
		}
		byID[spec.ID] = spec
		cfg.Registered = append(cfg.Registered, spec)
	}
	ps = append(ps, regProblems...)
	for _, spec := range cfg.AllFeeds() {
		for _, p := range cfg.PrivacyProblems(spec) {
			ps = append(ps, Problem{File: filepath.Join(dir, "feeds"), Msg: fmt.Sprintf("feed %q: %s", spec.ID, p)})
		}
	}
	labels, labelProblems := loadLabels(filepath.Join(dir, "labels.yaml"))
	ps = append(ps, labelProblems...)
	cfg.Labels = labels
	screens, screenProblems := loadScreens(filepath.Join(dir, "screens"), byID)
	ps = append(ps, screenProblems...)
	cfg.Screens = screens
	playlists, playlistProblems := loadPlaylists(filepath.Join(dir, "playlists"), screens)
	ps = append(ps, playlistProblems...)
	cfg.Playlists = playlists
	if len(ps) > 0 {
		return cfg, &Error{ps}
	}
	return cfg, nil
}

// RegistryPath is where feeds registered through the API are kept.
func RegistryPath(stateDir string) string { return filepath.Join(stateDir, "feeds.json") }

// LoadRegistry reads the registered feeds (none if the file does not
// exist), with defaults filled in and validated.
func LoadRegistry(path string) ([]feed.Spec, []Problem) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []Problem{{File: path, Msg: err.Error()}}
	}
	var specs []feed.Spec
	if err := json.Unmarshal(data, &specs); err != nil {
		return nil, []Problem{{File: path, Msg: err.Error()}}
	}
	var ps []Problem
	seen := map[string]bool{}
	for i, spec := range specs {
		spec = spec.WithDefaults()
		for _, p := range spec.Validate() {
			ps = append(ps, Problem{File: path, Msg: fmt.Sprintf("feed %d (%s): %s", i, spec.ID, p)})
		}
		if seen[spec.ID] {
			ps = append(ps, Problem{File: path, Msg: fmt.Sprintf("feed %q is registered twice", spec.ID)})
		}
		seen[spec.ID] = true
		specs[i] = spec
	}
	return specs, ps
}

// LoadFeed reads one feed file, with defaults filled in and validated.
func LoadFeed(path string) (feed.Spec, []Problem) {
	var spec feed.Spec
	data, err := os.ReadFile(path)
	if err != nil {
		return spec, []Problem{{File: path, Msg: err.Error()}}
	}
	node, ps := decodeStrict(path, data, &spec)
	if node == nil && len(ps) == 0 {
		return spec, []Problem{{File: path, Msg: "file is empty"}}
	}
	spec = spec.WithDefaults()
	for _, p := range spec.Validate() {
		ps = append(ps, Problem{File: path, Line: lineOf(node, p.Key), Msg: p.String()})
	}
	return spec, ps
}

func loadFeeds(dir string) ([]feed.Spec, []Problem) {
	return loadDir(dir, "feed", LoadFeed, func(s feed.Spec) string { return s.ID })
}

func loadScreens(dir string, feeds map[string]feed.Spec) ([]panel.ScreenSpec, []Problem) {
	return loadDir(dir, "screen", func(file string) (panel.ScreenSpec, []Problem) {
		var spec panel.ScreenSpec
		node, ps, ok := readStrict(file, &spec)
		spec.File = file
		if !ok {
			return spec, ps
		}
		// A panel is stale once its feed has been silent longer than the
		// feed's declared interval, unless it says otherwise.
		for i, p := range spec.Panels {
			if f, ok := feeds[p.Feed]; ok && p.StaleAfter == 0 && f.Interval > 0 {
				spec.Panels[i].StaleAfter = time.Duration(f.Interval)
			}
		}
		spec = spec.WithDefaults()
		for _, p := range loadGeo(filepath.Dir(dir), &spec) {
			ps = append(ps, Problem{File: file, Line: lineOf(node, p.Key), Msg: p.String()})
		}
		for _, p := range spec.Validate(feeds) {
			ps = append(ps, Problem{File: file, Line: lineOf(node, p.Key), Msg: p.String()})
		}
		return spec, ps
	}, func(s panel.ScreenSpec) string { return s.ID })
}

// Beside is the path of a file a configuration names (a map, a stations
// file): relative to the main file's folder, unless absolute.
func Beside(mainFile, f string) string { return beside(filepath.Dir(mainFile), f) }

func beside(dir, f string) string {
	if filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(dir, f)
}

// loadLabels reads the city's labels of tag values, if the file exists.
func loadLabels(file string) (feed.Labels, []Problem) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var labels feed.Labels
	node, ps, ok := readStrict(file, &labels)
	if !ok {
		return nil, ps
	}
	for _, p := range labels.Problems() {
		ps = append(ps, Problem{File: file, Line: lineOf(node, p.Key), Msg: p.String()})
	}
	return labels, ps
}

// loadGeo reads a screen's map and its panels' stations files, named
// relative to base (the main file's folder).
func loadGeo(base string, s *panel.ScreenSpec) []feed.Problem {
	var ps []feed.Problem
	rel := func(f string) string { return beside(base, f) }
	if s.Map != nil && s.Map.File != "" {
		m := *s.Map
		geo, err := citymap.Load(rel(m.File), m.Name)
		if err != nil {
			ps = append(ps, feed.Problem{Key: "map.file", Msg: err.Error()})
		}
		m.Geo = geo
		s.Map = &m
	}
	for i := range s.Panels {
		p := &s.Panels[i]
		if p.Stations == "" {
			continue
		}
		key := fmt.Sprintf("panels.%d.stations", i)
		var stations map[string]panel.Station
		_, sps, ok := readStrict(rel(p.Stations), &stations)
		for _, sp := range sps {
			ps = append(ps, feed.Problem{Key: key, Msg: sp.String()})
		}
		if !ok {
			continue
		}
		ids := make([]string, 0, len(stations))
		for id := range stations {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			st := stations[id]
			if st.Lon < -180 || st.Lon > 180 || st.Lat < -90 || st.Lat > 90 || (st.Lon == 0 && st.Lat == 0) {
				ps = append(ps, feed.Problem{Key: key, Msg: fmt.Sprintf("%s: station %s: lon %g, lat %g is not a position in degrees", p.Stations, id, st.Lon, st.Lat)})
			}
		}
		p.StationPos = stations
	}
	return ps
}

// Warnings are what cityscreen check reports without refusing the
// configuration: labels of a map's key that name no feature of the map,
// stations off the map, holes in a layout.
func (c *Config) Warnings() []Problem {
	var ws []Problem
	feeds := c.FeedsByID()
	for _, s := range c.Screens {
		file := s.File
		for _, v := range panel.UnmatchedLabels(s, feeds, c.Labels) {
			ws = append(ws, Problem{File: file, Msg: fmt.Sprintf("warning: labels: %s value %s names no feature of the map %s", s.Map.Key, v, s.Map.File)})
		}
		for _, st := range panel.OffMap(s) {
			ws = append(ws, Problem{File: file, Msg: "warning: " + st + " is off the map: it is listed beside the map, not drawn"})
		}
		if holes := s.Holes(); len(holes) > 0 {
			ws = append(ws, Problem{File: file, Msg: fmt.Sprintf("warning: layout: %d cells no panel covers, the first at %s", len(holes), holes[0])})
		}
	}
	return ws
}

// loadPlaylists reads dir/*.yaml as playlists of the screens given.
func loadPlaylists(dir string, screens []panel.ScreenSpec) ([]panel.Playlist, []Problem) {
	known := map[string]bool{}
	for _, s := range screens {
		known[s.ID] = true
	}
	return loadDir(dir, "playlist", func(file string) (panel.Playlist, []Problem) {
		var pl panel.Playlist
		node, ps, ok := readStrict(file, &pl)
		if !ok {
			return pl, ps
		}
		pl = pl.WithDefaults()
		for _, p := range pl.Validate(known) {
			ps = append(ps, Problem{File: file, Line: lineOf(node, p.Key), Msg: p.String()})
		}
		return pl, ps
	}, func(pl panel.Playlist) string { return pl.ID })
}

// loadDir loads every dir/*.yaml with load and keeps those without a
// problem, the first file of each ID; a later file with the same ID is a
// problem of its own.
func loadDir[T any](dir, kind string, load func(file string) (T, []Problem), id func(T) string) ([]T, []Problem) {
	files, err := yamlFiles(dir)
	if err != nil {
		return nil, []Problem{{File: dir, Msg: err.Error()}}
	}
	var out []T
	var ps []Problem
	first := map[string]string{}
	for _, file := range files {
		v, fps := load(file)
		ps = append(ps, fps...)
		if len(fps) > 0 {
			continue
		}
		if other, dup := first[id(v)]; dup {
			ps = append(ps, Problem{File: file, Line: 1, Msg: fmt.Sprintf("id: %s %q is already defined in %s", kind, id(v), other)})
			continue
		}
		first[id(v)] = file
		out = append(out, v)
	}
	return out, ps
}

// readStrict reads one YAML file strictly into out. ok is false when the
// file could not be read (the one problem says why); an empty file is a
// problem, and what follows may add others.
func readStrict(file string, out any) (node *yaml.Node, ps []Problem, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, []Problem{{File: file, Msg: err.Error()}}, false
	}
	node, ps = decodeStrict(file, data, out)
	if node == nil && len(ps) == 0 {
		ps = append(ps, Problem{File: file, Msg: "file is empty"})
	}
	return node, ps, true
}

// yamlFiles lists dir/*.yaml in name order; a missing dir has none.
func yamlFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
var unknownRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

// decodeStrict decodes one YAML document into out, rejecting unknown keys.
// It returns the document's node (nil for an empty file) so that later
// problems can be given a line.
func decodeStrict(file string, data []byte, out any) (*yaml.Node, []Problem) {
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return nil, yamlProblems(file, err)
	}
	if len(node.Content) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return &node, yamlProblems(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return &node, []Problem{{File: file, Line: extra.Line, Msg: "only one YAML document is allowed per file"}}
	}
	return &node, nil
}

func yamlProblems(file string, err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	ps := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{File: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			p.Line, _ = strconv.Atoi(sub[1])
			p.Msg = sub[2]
		}
		p.Msg = unknownRE.ReplaceAllString(p.Msg, "unknown key $1")
		ps = append(ps, p)
	}
	return ps
}

// lineOf finds the line of a dotted key path ("panels.2.window") in a
// document, or of the deepest part of it that exists.
func lineOf(doc *yaml.Node, key string) int {
	if doc == nil {
		return 0
	}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	if key == "" {
		return line
	}
	for _, part := range strings.Split(key, ".") {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(part); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// within reports whether path is dir or under it.
func within(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
