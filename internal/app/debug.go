package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's profiler on its own loopback listener when
// debug.pprof_addr is set; it is never on the public listener. It returns
// a function that stops it.
func (a *App) startPprof() (func(), error) {
	if a.cfg.Debug.PprofAddr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", a.cfg.Debug.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("debug.pprof_addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("the profiler's listener stopped", "err", err)
		}
	}()
	a.log.Warn("Go's profiler is served (debug.pprof_addr): keep it on loopback", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
