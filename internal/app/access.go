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
		SetupCodeFile: SetupCodePath(cfg.State.Dir),
		Log:           log,
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

// trimAudit removes audit records older than the retention.
func (a *App) trimAudit() {
	n, err := a.audit.Trim(time.Now().Add(-a.cfg.Auth.AuditRetention))
	switch {
	case err != nil:
		a.log.Error("cannot apply the audit retention", "err", err)
	case n > 0:
		a.log.Info("audit records past their retention removed", "records", n, "retention", a.cfg.Auth.AuditRetention)
	}
}

// sweepAuth forgets expired sessions and writes tokens' last use, every
// interval, until ctx ends (and once more then); it applies the audit
// retention hourly.
func (a *App) sweepAuth(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var trimmed time.Time
	for {
		if time.Since(trimmed) > time.Hour {
			a.trimAudit()
			a.auditCheckpoint("hourly")
			trimmed = time.Now()
		}
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
