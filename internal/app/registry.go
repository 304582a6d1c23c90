package app

import (
	"encoding/json"
	"errors"
	"fmt"

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
	}, spec)
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
	}, spec)
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
	}, feed.Spec{})
	return err
}

// changeRegistry validates spec (unless retiring), applies edit to the
// registered feeds, writes them and reloads; if the reload fails (a screen
// still uses a retired feed, say) the registry is put back.
func (a *App) changeRegistry(id string, edit func(reg []feed.Spec, exists bool) ([]feed.Spec, error), spec feed.Spec) ([]feed.Problem, error) {
	if spec.ID != "" || spec.Topic != "" {
		if ps := spec.WithDefaults().Validate(); len(ps) > 0 {
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
		return nil, fmt.Errorf("the registry cannot be read: %s", problems[0])
	}
	exists := false
	for _, s := range reg {
		exists = exists || s.ID == id
	}
	next, err := edit(reg, exists)
	if err != nil {
		return nil, err
	}
	if err := writeRegistry(path, next); err != nil {
		return nil, err
	}
	if err := a.reloadLocked(); err != nil {
		if werr := writeRegistry(path, reg); werr != nil {
			a.log.Error("cannot restore the feed registry", "err", werr)
		} else {
			a.reloadLocked() // back to what runs, and says so in the metrics
		}
		return nil, fmt.Errorf("%w: %v", web.ErrConflict, err)
	}
	a.log.Info("feed registry changed", "feed", id, "registered", len(next))
	return nil, nil
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
