// Command stdproxy is the benchmark's "what a Go user would write" peer: a
// net/http server in front of a tuned httputil.ReverseProxy. The transport
// keeps as many idle connections to the backend as the load has connections,
// never compresses, speaks HTTP/1.1 only and reuses 32 KiB copy buffers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address; must be a loopback IP")
	backend := flag.String("backend", "127.0.0.1:18000", "backend host:port; must be a loopback IP")
	conns := flag.Int("conns", 64, "idle connections kept to the backend (match the load's connection count)")
	flag.Parse()
	for _, a := range []string{*addr, *backend} {
		if err := load.CheckLoopback(a); err != nil {
			fail(err)
		}
	}
	target := &url.URL{Scheme: "http", Host: *backend}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          *conns,
		MaxIdleConnsPerHost:   *conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:  transport,
		BufferPool: bufferPool{},
		ErrorLog:   log.New(io.Discard, "", 0),
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           proxy,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
}

// bufferPool hands ReverseProxy reusable 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stdproxy:", err)
	os.Exit(1)
}
