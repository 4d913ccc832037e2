// Command bench is Gatehouse's benchmark harness. It starts a backend,
// Gatehouse built from the tree and its peers (nginx, HAProxy, Caddy, a tuned
// httputil.ReverseProxy) on this machine, over loopback only, measures them
// the same way and writes markdown, JSON and SVG results.
//
//	go run ./bench list              # the scenarios
//	go run ./bench overhead          # full mode, results in bench/results/
//	go run ./bench -quick overhead   # under two minutes, results in bench/results/tmp/
//
// See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
	"github.com/gatehouse/gatehouse/bench/scenario"
)

func main() {
	quick := flag.Bool("quick", false, "quick mode: under two minutes, results in bench/results/tmp unless -out")
	out := flag.String("out", "", "results directory (default bench/results, or bench/results/tmp with -quick)")
	peers := flag.String("peers", "", "comma-separated peers to run (default all; the direct path always runs)")
	prio := flag.String("prio", "rt", "scheduling of the proxy, backend and load generators on a shared machine: rt (SCHED_FIFO 1), nice (own autogroup at nice -20) or none; rt and nice need root")
	keep := flag.Bool("keep", false, "keep the work directory (binaries, generated configs, process logs)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [flags] <scenario> | list\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	name := flag.Arg(0)
	if name == "list" {
		for _, s := range scenario.All() {
			fmt.Printf("%-10s %s\n", s.Name, s.Summary)
		}
		return
	}
	s, ok := scenario.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (try: go run ./bench list)\n", name)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode := harness.Full
	if *quick {
		mode = harness.Quick
	}
	opts := harness.Options{
		Mode:    mode,
		OutDir:  *out,
		Keep:    *keep,
		Command: "go run ./bench " + strings.Join(os.Args[1:], " "),
		Log:     os.Stderr,
		PinSelf: true,
		Prio:    harness.Prio(*prio),
		Scratch: s.Scratch,
	}
	if *peers != "" {
		opts.Peers = strings.Split(*peers, ",")
	}
	t0 := time.Now()
	e, err := harness.NewEnv(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer e.Close()
	if *keep {
		e.Logf("work directory: %s", e.WorkDir)
	}
	rep, err := s.Run(ctx, e)
	if rep != nil {
		path, werr := harness.WriteReport(e, rep)
		if werr != nil {
			fmt.Fprintln(os.Stderr, "bench: writing report:", werr)
			os.Exit(1)
		}
		e.Logf("wrote %s (%s)", path, time.Since(t0).Round(time.Second))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		e.Close()
		os.Exit(1)
	}
}
