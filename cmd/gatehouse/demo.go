package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
)

//go:embed demo.yaml
var demoConfig string

// demoBackend is one in-process backend on a loopback port.
type demoBackend struct {
	name string
	srv  *http.Server
	addr string
}

func startBackend(name string, h http.Handler) (*demoBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return &demoBackend{name: name, srv: srv, addr: ln.Addr().String()}, nil
}

func usersHandler(instance string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"service":"users","instance":%q,"path":%q,"request_id":%q}`+"\n", instance, r.URL.Path, r.Header.Get("X-Request-Id"))
	})
}

func ordersHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/orders/slow", func(w http.ResponseWriter, r *http.Request) {
		select { // slower than the orders service's header timeout (1s)
		case <-time.After(3 * time.Second):
			io.WriteString(w, "finally\n")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/orders/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"service":"orders","path":%q}`+"\n", r.URL.Path)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Full duplex: answer each chunk as it arrives.
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 4096)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				http.NewResponseController(w).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	return mux
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "public listener address")
	adminAddr := fs.String("admin", "127.0.0.1:9901", "admin listener address")
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected argument %q\nusage: gatehouse demo [--listen ADDR] [--admin ADDR]\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveDemo(ctx, *listen, *adminAddr, stdout, stderr)
}

// serveDemo starts the demo backends and the gateway on them, prints the
// banner and serves until ctx ends.
func serveDemo(ctx context.Context, listen, adminAddr string, stdout, stderr io.Writer) int {
	var backends []*demoBackend
	defer func() {
		for _, b := range backends {
			b.srv.Close()
		}
	}()
	for _, b := range []struct {
		name string
		h    http.Handler
	}{{"USERS_1", usersHandler("users-1")}, {"USERS_2", usersHandler("users-2")}, {"ORDERS", ordersHandler()}} {
		be, err := startBackend(b.name, b.h)
		if err != nil {
			fmt.Fprintln(stderr, "demo backend:", err)
			return 1
		}
		backends = append(backends, be)
	}
	text := strings.NewReplacer("{{LISTEN}}", listen, "{{ADMIN}}", adminAddr).Replace(demoConfig)
	for _, b := range backends {
		text = strings.ReplaceAll(text, "{{"+b.name+"}}", b.addr)
	}
	cfg, err := config.Parse("demo.yaml", []byte(text))
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	g, err := gatehouse.New(*cfg)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	base := "http://" + g.Addr("public").String()
	slow := slowOrdersNote(cfg)
	fmt.Fprintf(stdout, `Gatehouse demo
  gateway  %[1]s
  admin    http://%[2]s   (open it in a browser: the live state machine; /metrics, /admin/passports, /admin/api/key)
  backends users %[3]s %[4]s, orders %[5]s

Try:
  curl -i %[1]s/users/42                          round robin over two instances
  curl -i %[1]s/orders/7
  curl -i %[1]s/orders/slow                       %[6]s
  curl -i %[1]s/nowhere                           404: no route
  curl -i -X POST --data-binary @/etc/os-release %[1]s/echo   streamed both ways
  curl -s http://%[2]s/admin/passports | head -40 what each request did
Stop with Ctrl-C.
`, base, g.AdminAddr(), backends[0].addr, backends[1].addr, backends[2].addr, slow)
	if err := g.Serve(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// slowOrdersNote says what /orders/slow answers, from the demo's own
// settings: each attempt gives up waiting for the response header after the
// orders service's header timeout, the failed attempt is retried (it is a
// GET, safe to retry), and the route's deadline ends the request first.
func slowOrdersNote(cfg *config.Config) string {
	var header, deadline time.Duration
	for _, s := range cfg.Services {
		if s.Name == "orders" {
			header = s.Limits.Upstream.HeaderTimeout.Std()
		}
	}
	for _, r := range cfg.Routes {
		if r.Name == "orders" {
			deadline = r.Limits.Request.Deadline.Std()
		}
	}
	return fmt.Sprintf("504 after %s (outcome deadline_exceeded): header timeout %s, retried, then the route's deadline", deadline, header)
}
