// Command embed runs Gatehouse inside a Go program: a configuration built
// in Go (no file), one backend served by the same program, and a request
// through the gateway. Run it with `go run ./examples/embed`.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	// A backend on a free loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the backend, request %s\n", r.Header.Get("X-Request-Id"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go backend.Serve(ln)
	defer backend.Close()

	// Every bound starts at its documented default; tighten what you need.
	cfg := config.Default()
	cfg.Listeners = []config.Listener{{Name: "public", Address: "127.0.0.1:0"}}
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Logging.AccessLog = false
	cfg.Limits.Request.Deadline = config.Duration(2 * time.Second)
	cfg.Services = []config.Service{cfg.NewService("hello", ln.Addr().String())}
	cfg.Routes = []config.Route{cfg.NewRoute("all", "hello")}

	g, err := gatehouse.New(*cfg)
	if err != nil {
		return err // a bad configuration lists every error with its key path
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx) }()

	resp, err := http.Get("http://" + g.Addr("public").String() + "/")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(out, "%s %s", resp.Status, body)

	cancel() // drains requests in flight, then stops
	return <-served
}
