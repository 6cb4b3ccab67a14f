// Command hello is the example service deployed by ferry: a small HTTP
// server that reads a TOML config, logs JSON to a reopenable file, talks
// sd_notify to systemd and shuts down gracefully.
//
// Exit codes: 0 success, 1 runtime failure (log file, listener, server),
// 2 bad command line, 78 (EX_CONFIG) invalid or missing configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"example.com/hello/internal/config"
	"example.com/hello/internal/logfile"
	"example.com/hello/internal/server"
)

// Set at build time with -ldflags "-X main.version=1.2.3".
var version = "dev"

// Set at build time with -ldflags "-X main.crashAtStart=1" to produce a
// release whose service fails to start (for rollback tests). Only serving is
// affected: -version and -check-config still work.
var crashAtStart = ""

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 78 // EX_CONFIG from sysexits.h
)

const shutdownTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", config.DefaultPath, "path of the TOML configuration `file`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	checkConfig := fs.Bool("check-config", false, "parse and validate the configuration, then exit (0 valid, 78 invalid)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hello: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage
	}

	if *showVersion {
		fmt.Fprintln(stdout, version)
		return exitOK
	}

	if crashAtStart != "" && !*checkConfig {
		fmt.Fprintln(stderr, "crashAtStart set: exiting")
		return exitFailure
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "hello: invalid configuration: %v\n", err)
		return exitConfig
	}
	if *checkConfig {
		fmt.Fprintf(stdout, "hello: configuration %s is valid\n", *configPath)
		return exitOK
	}

	return serve(cfg, stderr)
}

func serve(cfg *config.Config, stderr io.Writer) int {
	// Catch signals before doing anything slow: SIGHUP's default action
	// would kill the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	logFile, err := logfile.Open(cfg.LogFile)
	if err != nil {
		fmt.Fprintf(stderr, "hello: cannot open log file: %v\n", err)
		return exitFailure
	}
	defer logFile.Close()

	level := new(slog.LevelVar)
	level.Set(cfg.Level)
	logger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: level}))
	fail := func(msg string, err error) int {
		logger.Error(msg, "error", err)
		fmt.Fprintf(stderr, "hello: %s: %v\n", msg, err)
		return exitFailure
	}

	if cfg.AdminEnabled() && len(cfg.AdminToken) < config.MinRecommendedTokenLen {
		logger.Warn("admin token is shorter than recommended", "min_length", config.MinRecommendedTokenLen)
	}

	listeners, activated, err := listen(cfg.Listen)
	if err != nil {
		return fail("cannot listen", err)
	}

	started := time.Now()
	srv := &http.Server{
		Handler: server.New(server.Options{
			Version:     version,
			Environment: cfg.Environment,
			Greeting:    cfg.Greeting,
			AdminToken:  cfg.AdminToken,
			Logger:      logger,
			Started:     started,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	addrs := make([]string, len(listeners))
	for i, l := range listeners {
		addrs[i] = l.Addr().String()
		logger.Info("listening", "addr", addrs[i], "socket_activated", activated)
	}
	logger.Info("started",
		"version", version, "environment", cfg.Environment, "pid", os.Getpid(),
		"go", runtime.Version(), "log_level", cfg.LogLevel, "admin_enabled", cfg.AdminEnabled())

	// The sockets are bound (or inherited), so clients can connect: tell
	// systemd we are ready before entering Serve.
	notify(logger, daemon.SdNotifyReady+"\nSTATUS=serving on "+strings.Join(addrs, ", "))
	fmt.Fprintf(stderr, "hello %s: serving on %s\n", version, strings.Join(addrs, ", "))

	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func(l net.Listener) { serveErr <- srv.Serve(l) }(l)
	}

	stopWatchdog := startWatchdog(logger)
	defer stopWatchdog()

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reopenLog(logger, logFile, stderr)
				continue
			}
			logger.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout.String())
			// Watchdog pings continue while draining.
			notify(logger, daemon.SdNotifyStopping+"\nSTATUS=shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				logger.Warn("graceful shutdown incomplete, closing remaining connections", "error", err)
				_ = srv.Close()
			}
			logger.Info("stopped")
			fmt.Fprintf(stderr, "hello %s: stopped\n", version)
			return exitOK
		case err := <-serveErr:
			// Serve only returns ErrServerClosed after Shutdown/Close,
			// which happen above; anything else is fatal.
			_ = srv.Close()
			notify(logger, daemon.SdNotifyStopping)
			return fail("server failed", err)
		}
	}
}

// listen returns the sockets passed by systemd socket activation if there
// are any (LISTEN_FDS/LISTEN_PID), otherwise binds addr.
func listen(addr string) (ls []net.Listener, activated bool, err error) {
	inherited, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	if len(inherited) > 0 {
		for i, l := range inherited {
			if l == nil {
				for _, o := range inherited {
					if o != nil {
						o.Close()
					}
				}
				return nil, false, fmt.Errorf("socket activation: inherited fd %d is not a stream socket", 3+i)
			}
		}
		return inherited, true, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return []net.Listener{l}, false, nil
}

// reopenLog is what SIGHUP does: reopen the log file (after logrotate has
// moved it away). The RELOADING=1 / READY=1 pair keeps Type=notify-reload
// units (whose "systemctl reload" sends SIGHUP) happy and is harmless for
// Type=notify.
func reopenLog(logger *slog.Logger, lf *logfile.File, stderr io.Writer) {
	notify(logger, daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec())
	if err := lf.Reopen(); err != nil {
		// The old file is still in use, so this line lands there.
		logger.Error("cannot reopen log file, still writing to the previous one", "path", lf.Path(), "error", err)
		fmt.Fprintf(stderr, "hello: cannot reopen log file: %v\n", err)
	} else {
		logger.Info("log file reopened", "path", lf.Path())
	}
	notify(logger, daemon.SdNotifyReady)
}

// startWatchdog pings systemd at half of WATCHDOG_USEC, if the unit sets
// WatchdogSec=. The returned function stops the pings; it may be called
// more than once.
func startWatchdog(logger *slog.Logger) (stop func()) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		logger.Warn("ignoring invalid watchdog settings", "error", err)
		return func() {}
	}
	if interval <= 0 {
		return func() {}
	}
	period := interval / 2
	logger.Info("watchdog enabled", "interval", interval.String(), "ping_every", period.String())
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				notify(logger, daemon.SdNotifyWatchdog)
			}
		}
	}()
	var closed bool
	return func() {
		if !closed {
			closed = true
			close(done)
			<-stopped
		}
	}
}

func notify(logger *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		logger.Warn("sd_notify failed", "state", strings.SplitN(state, "\n", 2)[0], "error", err)
	}
}
