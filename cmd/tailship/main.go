// Command tailship is the log-shipping agent's CLI: run, check, top and
// version.
// It is the only place that calls os.Exit. Exit codes: 0 ok, 1 config error,
// 2 runtime failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/api"
	_ "github.com/tailship/tailship/inputs/amqp"
	_ "github.com/tailship/tailship/inputs/file"
	_ "github.com/tailship/tailship/inputs/kafka"
	_ "github.com/tailship/tailship/inputs/nats"
	_ "github.com/tailship/tailship/inputs/redis"
	_ "github.com/tailship/tailship/inputs/stdin"
	_ "github.com/tailship/tailship/inputs/syslog"
	_ "github.com/tailship/tailship/outputs/amqp"
	_ "github.com/tailship/tailship/outputs/file"
	_ "github.com/tailship/tailship/outputs/http"
	_ "github.com/tailship/tailship/outputs/kafka"
	_ "github.com/tailship/tailship/outputs/nats"
	_ "github.com/tailship/tailship/outputs/redis"
	_ "github.com/tailship/tailship/outputs/stdout"
	_ "github.com/tailship/tailship/outputs/tcp"
	_ "github.com/tailship/tailship/parse"
	_ "github.com/tailship/tailship/processors"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const (
	exitOK      = 0
	exitConfig  = 1
	exitRuntime = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tailship <command> [--config FILE]

commands:
  run      ship logs until SIGINT/SIGTERM, then drain and exit
  check    validate the config and exit (0 valid, 1 invalid)
  top      show per-file lag and per-output throughput from a running
           agent's API (--addr HOST:PORT, else api.listen of --config)
  version  print the version

--config defaults to ./tailship.toml, then /etc/tailship/tailship.toml
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tailship %s\n", version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "top":
		return runTop(rest, stdout, stderr)
	case "run", "check":
	default:
		fmt.Fprintf(stderr, "tailship: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(rest); err != nil {
		return exitConfig
	}
	if *path == "" {
		*path = defaultConfigPath()
	}
	cfg, err := agent.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if cmd == "check" {
		fmt.Fprintf(stdout, "%s: ok (%d inputs, %d outputs)\n", *path, len(cfg.Inputs), len(cfg.Outputs))
		return exitOK
	}
	return runAgent(cfg, stderr)
}

func defaultConfigPath() string {
	for _, p := range []string{"tailship.toml", "/etc/tailship/tailship.toml"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "tailship.toml"
}

func runAgent(cfg *agent.Config, stderr io.Writer) int {
	log, err := agent.NewLogger(cfg.Agent)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	defer log.Sync()
	// Between collections the Go heap grows to twice what is live; on a
	// node agent that doubling is the user's memory. A soft limit above the
	// buffer budget makes the collector work harder instead. Measured with
	// the default 8 MiB budget (go run ./tests/bench): 48 MiB let 1,000
	// files peak at 51 MiB RSS; 32 MiB made the collector cost 80% more CPU
	// there; 36 MiB kept them at 44 MiB for 20%. GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(2*int64(cfg.Agent.MemoryLimit) + 20<<20)
	}
	// The heap between collections, halved: the pipeline allocates almost
	// nothing per line, so collections stay rare, and the peak no longer
	// creeps up with the length of a run (raw file -> TCP: 31 MiB for a
	// 100 MB backlog and 32-33 MiB for 2 GB, against 31 and 35-38 MiB at
	// the default 100). GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// Profiles for performance work: go run ./tests/bench passes the
	// environment on to the agent it starts.
	if p := os.Getenv("TAILSHIP_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	// TAILSHIP_MEMPROFILE: the heap profile (in use and allocated) at exit,
	// or, with TAILSHIP_MEMPROFILE_AT=1s, that long after the start, which
	// is when a backlog is being shipped.
	if p := os.Getenv("TAILSHIP_MEMPROFILE"); p != "" {
		write := func() {
			if f, err := os.Create(p); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
		if at, err := time.ParseDuration(os.Getenv("TAILSHIP_MEMPROFILE_AT")); err == nil {
			t := time.AfterFunc(at, write)
			defer t.Stop()
		} else {
			defer write()
		}
	}
	srv := api.New(cfg.API, log.With(zap.String("component", "api")))
	sup, err := agent.NewSupervisor(cfg, log, agent.SupervisorOptions{ObserveLatency: srv.ObserveLatency})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return exitRuntime
	}
	srv.Attach(sup)
	if cfg.API.Listen != "" {
		// Shipping matters more than the API: an address in use is
		// logged and the agent runs without it (its probes then fail,
		// which is how an orchestrator notices).
		if err := srv.Start(); err != nil {
			log.Error("the API is not available; shipping without it", zap.Error(err))
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Close(ctx)
		}()
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// The signal loop is owned here: it ends when sigs closes, after Run.
	sigDone := make(chan struct{})
	go func() {
		defer close(sigDone)
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					log.Info("SIGHUP received; reloading the config", zap.String("config", cfg.Path))
					// Reload reports and logs its own outcome; a bad file
					// leaves the running config in place.
					_ = sup.Reload(ctx)
					continue
				}
				log.Info("signal received; stopping", zap.String("signal", s.String()))
				stop()
			case <-ctx.Done():
				return
			}
		}
	}()
	err = sup.Run(ctx)
	stop()
	<-sigDone
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("tailship failed", zap.Error(err))
		return exitRuntime
	}
	return exitOK
}
