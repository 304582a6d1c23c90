package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
	"github.com/cityscreen/cityscreen/internal/web"
)

// Register adds a feed through the API: it is kept in feeds.json under the
// state directory (written atomically) and is live at once, as a reload
// makes it. A definition with problems changes nothing.
func (a *App) Register(spec feed.Spec) ([]feed.Problem, error) {
	return a.changeRegistry(spec.ID, func(reg []feed.Spec, exists bool) ([]feed.Spec, error) {
		if exists {
			return nil, fmt.Errorf("%w: feed %q", web.ErrExists, spec.ID)
		}
		return append(reg, spec), nil
	}, &spec)
}

// Update replaces a registered feed's definition.
func (a *App) Update(id string, spec feed.Spec) ([]feed.Problem, error) {
	if spec.ID != id {
		return []feed.Problem{{Key: "id", Msg: fmt.Sprintf("%q does not match the address's %q", spec.ID, id)}}, nil
	}
	return a.changeRegistry(id, func(reg []feed.Spec, exists bool) ([]feed.Spec, error) {
		if !exists {
			return nil, fmt.Errorf("%w: no registered feed %q", web.ErrNotFound, id)
		}
		for i := range reg {
			if reg[i].ID == id {
				reg[i] = spec
			}
		}
		return reg, nil
	}, &spec)
}

// Retire removes a registered feed; what it stored stays in InfluxDB.
func (a *App) Retire(id string) error {
	_, err := a.changeRegistry(id, func(reg []feed.Spec, exists bool) ([]feed.Spec, error) {
		if !exists {
			return nil, fmt.Errorf("%w: no registered feed %q", web.ErrNotFound, id)
		}
		out := reg[:0:0]
		for _, s := range reg {
			if s.ID != id {
				out = append(out, s)
			}
		}
		return out, nil
	}, nil)
	return err
}

// changeRegistry validates spec (nil when retiring), applies edit to the
// registered feeds, writes them and reloads; if the reload fails (a screen
// still uses a retired feed, say) the registry is put back. Nothing is
// written for a definition with problems, and no answer names a file
// under the state directory.
func (a *App) changeRegistry(id string, edit func(reg []feed.Spec, exists bool) ([]feed.Spec, error), spec *feed.Spec) ([]feed.Problem, error) {
	if spec != nil {
		*spec = spec.WithDefaults()
		if ps := spec.Validate(); len(ps) > 0 {
			return ps, nil
		}
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	for _, s := range a.cfg.Feeds {
		if s.ID == id {
			return nil, fmt.Errorf("%w: feed %q is defined in a file under feeds/: edit the file", web.ErrConflict, id)
		}
	}
	path := config.RegistryPath(a.cfg.State.Dir)
	reg, problems := config.LoadRegistry(path)
	if len(problems) > 0 {
		a.log.Error("the feed registry cannot be read", "problem", problems[0].String())
		return nil, errors.New("the feed registry cannot be read: see the server's log")
	}
	exists := false
	for _, s := range reg {
		exists = exists || s.ID == id
	}
	next, err := edit(reg, exists)
	if err != nil {
		return nil, err
	}
	if spec != nil {
		// Personal data the main file or another feed protects on the
		// topics this feed shares with them.
		cfg, err := config.Load(a.cfg.File, a.cfg.Env)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", web.ErrConflict, publicProblems(a.cfg, err))
		}
		cfg.Registered = next
		if ps := cfg.PrivacyProblems(*spec); len(ps) > 0 {
			return ps, nil
		}
	}
	if err := writeRegistry(path, next); err != nil {
		a.log.Error("cannot write the feed registry", "err", err)
		return nil, errors.New("the feed registry cannot be written: see the server's log")
	}
	if err := a.reloadLocked(); err != nil {
		if werr := writeRegistry(path, reg); werr != nil {
			a.log.Error("cannot restore the feed registry", "err", werr)
		} else {
			a.reloadLocked() // back to what runs, and says so in the metrics
		}
		return nil, fmt.Errorf("%w: %s", web.ErrConflict, publicProblems(a.cfg, err))
	}
	if err := a.shareFeed(id, spec); err != nil {
		// The cluster did not take it: nothing is changed here either.
		if werr := writeRegistry(path, reg); werr != nil {
			a.log.Error("cannot restore the feed registry", "err", werr)
		} else {
			a.reloadLocked()
		}
		return nil, err
	}
	a.log.Info("feed registry changed", "feed", id, "registered", len(next))
	return nil, nil
}

// publicProblems says what is wrong with the configuration in words fit
// for an API answer: files by their name under the configuration
// directory, the registry as "the feed registry", never a full path.
func publicProblems(cfg *config.Config, err error) string {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return "the configuration does not load: see the server's log"
	}
	dir := filepath.Dir(cfg.File)
	var out []string
	for _, p := range ce.Problems {
		name := "the configuration"
		switch rel, rerr := filepath.Rel(dir, p.File); {
		case p.File == config.RegistryPath(cfg.State.Dir):
			name = "the feed registry"
		case rerr == nil && !strings.HasPrefix(rel, ".."):
			name = filepath.ToSlash(rel)
		}
		if p.Line > 0 {
			name = fmt.Sprintf("%s:%d", name, p.Line)
		}
		out = append(out, name+": "+p.Msg)
	}
	return strings.Join(out, "; ")
}

// writeRegistry replaces the registry file atomically and durably.
func writeRegistry(path string, specs []feed.Spec) error {
	if specs == nil {
		specs = []feed.Spec{}
	}
	data, err := json.MarshalIndent(specs, "", "  ")
	if err != nil {
		return err
	}
	err = atomicfile.Write(path, data)
	if err != nil {
		return errors.Join(errors.New("writing the feed registry"), err)
	}
	return nil
}
