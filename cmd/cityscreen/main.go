// Command cityscreen is the city operations centre's one-screen server.
//
//	cityscreen serve [-config FILE]   run the server
//	cityscreen check [-config FILE]   validate the configuration
//	cityscreen version                print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cityscreen/cityscreen/internal/app"
	"github.com/cityscreen/cityscreen/internal/audit"
	"github.com/cityscreen/cityscreen/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, "usage: cityscreen audit verify [-config FILE] [OTHER-INSTANCE-LOG ...]")
			return 2
		}
		return auditVerify(args[2:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "cityscreen", version)
		return 0
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "cityscreen: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: cityscreen <command> [-config FILE]

commands:
  serve     run the server
  check          validate the main file, every feed and screen file
  audit verify   check the audit log's hash chain; name the first bad record;
                 with other instances' logs (copied with their .head and
                 .anchor), check the cluster's logs as one history
  version        print the version

The config file is -config, else $CITYSCREEN_CONFIG, else config/cityscreen.yaml.
`)
}

func load(name string, args []string, stderr io.Writer) (*config.Config, error) {
	cfg, _, err := loadArgs(name, args, stderr)
	return cfg, err
}

// loadArgs is load that also returns the arguments after the flags.
func loadArgs(name string, args []string, stderr io.Writer) (*config.Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("CITYSCREEN_CONFIG")
	if def == "" {
		def = "config/cityscreen.yaml"
	}
	path := fs.String("config", def, "main configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*path, config.Environ())
	return cfg, fs.Args(), err
}

func check(args []string, stdout, stderr io.Writer) int {
	cfg, err := load("check", args, stderr)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, p)
			}
			fmt.Fprintf(stderr, "%d problems\n", len(ce.Problems))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	warnings := cfg.Warnings()
	for _, w := range warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d feeds, %d screens, %d warnings)\n", cfg.File, len(cfg.AllFeeds()), len(cfg.Screens), len(warnings))
	return 0
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	cfg, others, err := loadArgs("audit verify", args, stderr)
	if err != nil && cfg == nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// The rest of the configuration may have problems; the audit key
	// may not: verifying without it would vouch for nothing.
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			if strings.Contains(p.File, "AUDIT_KEY") || strings.Contains(p.Msg, "audit_key") {
				fmt.Fprintln(stderr, p)
				return 1
			}
		}
	}
	path := app.AuditPath(cfg.State.Dir)
	key := []byte(cfg.Auth.AuditKey)
	if len(others) > 0 || cfg.Cluster.Shared() {
		return clusterVerify(cfg, append([]string{path}, others...), key, stdout, stderr)
	}
	rep, err := audit.Verify(path, key)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "%s: no audit log yet, and no head: nothing has been recorded\n", path)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	if len(rep.Problems) > 0 {
		for _, p := range rep.Problems {
			fmt.Fprintf(stderr, "%s: %s\n", path, p)
		}
		n := fmt.Sprintf("%d problems", len(rep.Problems))
		if len(rep.Problems) == 1 {
			n = "1 problem"
		}
		fmt.Fprintf(stderr, "%s: %v: %s, the first at %s\n", path, audit.ErrTampered, n, rep.Problems[0])
		return 1
	}
	note := "head and anchor signed with the audit key"
	if !rep.Signed {
		note = "unsigned: set auth.audit_key to find the newest records removed with the head"
	}
	if rep.Unsigned > 0 {
		note += "; the newest record is not yet signed (being written, or written before a crash)"
	}
	fmt.Fprintf(stdout, "%s: ok, %d records (%s)\n", path, rep.Records, note)
	return 0
}

func serve(args []string, stderr io.Writer) int {
	cfg, err := load("serve", args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	// SIGHUP reloads the feed and screen files (as editing them does).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				a.Reload()
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// clusterVerify verifies the audit logs of a cluster's instances as one
// history, against the heads each instance told the cluster (read from
// this instance's mirror of the cluster's records).
func clusterVerify(cfg *config.Config, paths []string, key []byte, stdout, stderr io.Writer) int {
	heads := map[string]audit.Head{}
	if cfg.Cluster.Shared() {
		all, err := app.AuditHeads(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "the cluster's records: %v\n", err)
			return 1
		}
		heads = all
		if len(paths) == 1 { // this instance's log alone: its own head
			heads = map[string]audit.Head{}
			if h, ok := all[cfg.Cluster.Instance]; ok {
				heads[cfg.Cluster.Instance] = h
			}
		}
	}
	rep, err := audit.VerifyCluster(paths, key, heads)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, l := range rep.Logs {
		name := l.Instance
		if name == "" {
			name = "(no instance named)"
		}
		for _, p := range l.Problems {
			fmt.Fprintf(stderr, "%s: %s\n", l.Path, p)
		}
		fmt.Fprintf(stdout, "%s: instance %s, %d records, %s to %s\n", l.Path, name, l.Records,
			l.First.Format(time.RFC3339), l.Last.Format(time.RFC3339))
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stderr, p)
	}
	if !rep.OK() {
		fmt.Fprintf(stderr, "%v: the cluster's audit logs do not verify as one history\n", audit.ErrTampered)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d logs, %d records, one history (%d instances' heads in the cluster checked)\n", len(rep.Logs), rep.Records, len(heads))
	return 0
}
