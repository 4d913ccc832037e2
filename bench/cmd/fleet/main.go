// Command fleet is the fault scenarios' backend: several HTTP/1.1 endpoints
// on loopback ports in one process, which a plan posted to its control API
// makes slow, down (restarting), failing or resetting on a schedule, and
// which counts every request it gets (see package bench/fleet).
//
//	fleet -addrs 127.0.0.1:21001,127.0.0.1:21002 -control 127.0.0.1:21000
//	curl -X POST 127.0.0.1:21000/run -d '{"events":[{"at_ns":1e9,"endpoint":0,"mode":"down"},{"at_ns":2e9,"endpoint":0,"mode":"slow","delay_ns":2e8}]}'
//	curl 127.0.0.1:21000/stats
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/fleet"
	"github.com/gatehouse/gatehouse/bench/load"
)

func main() {
	addrs := flag.String("addrs", "", "comma-separated endpoint addresses (loopback IPs only)")
	control := flag.String("control", "", "control API address (loopback IP)")
	body := flag.Int("body", 64, "200 response body size in bytes")
	flag.Parse()
	if *addrs == "" || *control == "" {
		fail(errors.New("-addrs and -control are required"))
	}
	if err := load.CheckLoopback(*control); err != nil {
		fail(err)
	}
	fleet.SetErrorLog(os.Stderr)
	f, err := fleet.New(strings.Split(*addrs, ","), fleet.Body(*body))
	if err != nil {
		fail(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: fleet.Handler(f), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "fleet: %d endpoints %s, control %s\n", len(f.Addrs()), strings.Join(f.Addrs(), ","), ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(1)
}
