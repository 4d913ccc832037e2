// Command gatehouse runs the gateway.
//
//	gatehouse run [-c] gatehouse.yaml [--log-format console]   serve, reload on change or SIGHUP
//	gatehouse check [-c] gatehouse.yaml                        build it as run would, without listening; every error, non-zero exit
//	gatehouse demo                                             embedded config and demo backends
//	gatehouse script test FILE [--cases CASES.yaml]            run a script against example requests
//	gatehouse version
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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
  gatehouse run [-c] FILE [--log-format json|console]     (FILE defaults to gatehouse.yaml)
  gatehouse check [-c] FILE [--log-format json|console]
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
		return cmdRun(args[1:], stdout, stderr)
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

// parseFlags parses args with fs, sending -h's help to stdout and a usage
// error to stderr. done reports that the command is over, with code 0
// after -h and 2 after a usage error.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		io.Copy(stdout, &out)
		return 0, true
	case err != nil:
		io.Copy(stderr, &out)
		return 2, true
	}
	return 0, false
}

// configArgs are what run and check are given: the configuration file and
// the log format that overrides its logging.format ("" keeps the file's).
type configArgs struct{ path, format string }

// defaultConfigPath is the configuration file when none is named.
const defaultConfigPath = "gatehouse.yaml"

// parseConfigArgs reads run's and check's arguments: the file as -c FILE or
// as the one positional argument (flags may come before or after it), and
// --log-format. Anything else is a usage error that names it. done and
// code are as parseFlags returns them.
func parseConfigArgs(name string, args []string, stdout, stderr io.Writer) (ca configArgs, code int, done bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	flagPath := fs.String("c", defaultConfigPath, "configuration file (or give it as the argument)")
	format := fs.String("log-format", "", "log format: json or console (overrides logging.format)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gatehouse %s [-c] FILE [--log-format json|console]   (FILE defaults to %s)\n", name, defaultConfigPath)
		fs.PrintDefaults()
	}
	usageErr := func(format string, a ...any) (configArgs, int, bool) {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
		fmt.Fprintf(stderr, "usage: gatehouse %s [-c] FILE [--log-format json|console]\n", name)
		return configArgs{}, 2, true
	}
	// flag stops at the first argument that is not a flag: parse again
	// after each one, so that flags after the file are not dropped.
	var positional []string
	for rest := args; len(rest) > 0; {
		if code, done := parseFlags(fs, rest, stdout, stderr); done {
			return configArgs{}, code, true
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if n := len(rest) - len(left); n > 0 && rest[n-1] == "--" {
			positional = append(positional, left...) // after "--" nothing is a flag
			break
		}
		positional, rest = append(positional, left[0]), left[1:]
	}
	if len(positional) > 1 {
		return usageErr("unexpected argument %q: one configuration file at a time (already %q)", positional[1], positional[0])
	}
	path := *flagPath
	if len(positional) == 1 {
		cSet := false
		fs.Visit(func(f *flag.Flag) { cSet = cSet || f.Name == "c" })
		if cSet && filepath.Clean(*flagPath) != filepath.Clean(positional[0]) {
			return usageErr("-c %q and the argument %q name different configuration files: give one", *flagPath, positional[0])
		}
		path = positional[0]
	}
	switch *format {
	case "", "json", "console":
	default:
		return usageErr("--log-format: must be json or console, got %q", *format)
	}
	return configArgs{path: path, format: *format}, 0, false
}

// loadConfig loads the configuration file with the log format, when set,
// in place of the file's logging.format.
func loadConfig(path, format string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil && format != "" {
		cfg.Logging.Format = format
	}
	return cfg, err
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

func cmdRun(args []string, stdout, stderr io.Writer) int {
	ca, code, done := parseConfigArgs("run", args, stdout, stderr)
	if done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveFile(ctx, ca.path, ca.format, stderr, nil)
}

// serveFile runs the gateway from a configuration file until ctx ends,
// reloading it when the file changes and on SIGHUP. started, if not nil,
// is called once the gateway is built.
func serveFile(ctx context.Context, path, format string, stderr io.Writer, started func(*gatehouse.Gateway)) int {
	load := func() (*config.Config, error) { return loadConfig(path, format) }
	cfg, err := load()
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	g, err := gatehouse.New(*cfg, gatehouse.WithSource(load), gatehouse.WithLogOutput(stderr, nil))
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	lg := g.Logger() // follows a reload's logging.level and logging.format
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
