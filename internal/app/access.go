package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cityscreen/cityscreen/internal/auth"
	"github.com/cityscreen/cityscreen/internal/config"
)

// AuthPath is where the users and tokens of a state directory are.
func AuthPath(stateDir string) string { return filepath.Join(stateDir, "auth.json") }

// openAuth loads users and tokens and applies the bootstrap administrator
// of the configuration: its token (never stored) and its password.
func openAuth(cfg *config.Config, log *slog.Logger) (*auth.Manager, error) {
	m, err := auth.Open(auth.Options{
		Path:        AuthPath(cfg.State.Dir),
		SessionIdle: cfg.Auth.SessionIdle, SessionMax: cfg.Auth.SessionMax,
		AccountAttempts: cfg.Auth.AccountAttempts, AddressAttempts: cfg.Auth.AddressAttempts,
		LockoutWindow: cfg.Auth.LockoutWindow, Lockout: cfg.Auth.Lockout,
		Log: log,
	})
	if err != nil {
		return nil, err
	}
	m.SetBootstrapToken(cfg.Admin.Token)
	if cfg.Admin.Password != "" {
		if err := m.EnsureAdmin(cfg.Admin.User, cfg.Admin.Password); err != nil {
			return nil, err
		}
		log.Info("bootstrap administrator ready", "user", cfg.Admin.User)
	}
	return m, nil
}

// SetupCode is the one-time code printed at start to create the first
// administrator, "" when none is needed.
func (a *App) SetupCode() string { return a.setupCode }

// sweepAuth forgets expired sessions and writes tokens' last use, every
// interval, until ctx ends (and once more then).
func (a *App) sweepAuth(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.auth.Flush()
			return
		case <-t.C:
		}
		a.auth.Sweep()
		if err := a.auth.Flush(); err != nil {
			a.log.Error("cannot write users and tokens", "err", err)
		}
	}
}
