// Command gatehouse runs the gateway.
//
//	gatehouse run -c gatehouse.yaml [--log-format console]   serve, reload on change or SIGHUP
//	gatehouse check -c gatehouse.yaml                        validate, start each plugin once; every error, non-zero exit
//	gatehouse demo                                           embedded config and demo backends
//	gatehouse script test FILE [--cases CASES.yaml]          run a script against example requests
//	gatehouse version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  gatehouse run -c FILE [--log-format json|console]
  gatehouse check -c FILE
  gatehouse demo [--listen ADDR] [--admin ADDR]
  gatehouse script test FILE [--cases CASES.yaml]
  gatehouse version
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "script":
		return cmdScript(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "gatehouse %s (%s)\n", gatehouse.Version, runtime.Version())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func configFlags(name string, args []string, stderr io.Writer) (fs *flag.FlagSet, path, format *string, err error) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path = fs.String("c", "gatehouse.yaml", "configuration file")
	format = fs.String("log-format", "", "log format: json or console (overrides logging.format)")
	err = fs.Parse(args)
	return
}

// printErrors lists every configuration error, one per line.
func printErrors(w io.Writer, err error) {
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	_, path, _, err := configFlags("check", args, stderr)
	if err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if !checkScripts(cfg, stderr) {
		return 1
	}
	if !checkPlugins(cfg, stderr) {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d services, %d routes)\n", *path, len(cfg.Listeners), len(cfg.Services), len(cfg.Routes))
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	_, path, format, err := configFlags("run", args, stderr)
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveFile(ctx, *path, *format, stderr, nil)
}

// serveFile runs the gateway from a configuration file until ctx ends,
// reloading it when the file changes and on SIGHUP. started, if not nil,
// is called once the gateway is built.
func serveFile(ctx context.Context, path, format string, stderr io.Writer, started func(*gatehouse.Gateway)) int {
	load := func() (*config.Config, error) {
		cfg, err := config.Load(path)
		if err == nil && format != "" {
			cfg.Logging.Format = format
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	g, err := gatehouse.New(*cfg, gatehouse.WithSource(load))
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	lg := gatehouse.NewLogger(cfg.Logging, stderr)
	w, err := watchConfig(ctx, path, func() { reload(g, load, lg) })
	if err != nil {
		lg.Warn().Err(err).Msg("not watching the configuration file; SIGHUP still reloads")
	} else {
		defer w.Close()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				lg.Info().Msg("SIGHUP: reloading the configuration")
				reload(g, load, lg)
			case <-ctx.Done():
				return
			}
		}
	}()
	if started != nil {
		started(g)
	}
	if err := g.Serve(ctx); err != nil {
		lg.Error().Err(err).Msg("shutdown")
		return 1
	}
	return 0
}
