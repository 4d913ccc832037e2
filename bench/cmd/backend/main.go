// Command backend is the benchmark's fixed HTTP/1.1 backend: every request gets
// a 200 with a 64-byte body (size set by -body), optionally after -delay.
//
// With -workers N it has a fixed capacity, as a server with a pool of N
// workers: at most N requests are served (their -delay) at once, the others
// wait in arrival order, so it completes at most N / delay requests per
// second whatever it is offered.
//
// It speaks just enough HTTP/1.1 (keep-alive, pipelining, Content-Length and
// chunked request bodies) over raw connections to cost a few microseconds per
// request: it shares a CPU with the load generator, and must not be what
// limits the proxies' throughput.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/bench/load"
	"github.com/gatehouse/gatehouse/bench/timerfd"
)

// Bounds of one connection.
const (
	maxHeaderBytes = 64 << 10
	idleTimeout    = 2 * time.Minute
	writeTimeout   = 30 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "listen address; must be a loopback IP")
	delay := flag.Duration("delay", 0, "wait this long before each response (precise to microseconds)")
	body := flag.Int("body", 64, "response body size in bytes")
	workers := flag.Int("workers", 0, "serve at most this many requests' -delay at once, the rest waiting their turn (0: no limit)")
	flag.Parse()
	if err := load.CheckLoopback(*addr); err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fail(err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	s := newServer(*body, *delay)
	if *workers > 0 {
		s.pool = make(chan struct{}, *workers)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			fmt.Fprintln(os.Stderr, "backend: accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.serve(c)
	}
}

type server struct {
	keepAlive, closing []byte
	delay              time.Duration
	pool               chan struct{} // a slot per worker; nil: no limit
}

func newServer(body int, delay time.Duration) *server {
	payload := strings.Repeat("x", max(body-1, 0)) + "\n"
	if body == 0 {
		payload = ""
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(payload)) + "\r\n"
	return &server{
		keepAlive: []byte(head + "\r\n" + payload),
		closing:   []byte(head + "Connection: close\r\n\r\n" + payload),
		delay:     delay,
	}
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, maxHeaderBytes)
	bw := bufio.NewWriterSize(c, 16<<10)
	var tm *timerfd.Timer
	if s.delay > 0 {
		var err error
		if tm, err = timerfd.New(); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			return
		}
		defer tm.Close()
	}
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		keep, err := readRequest(br)
		if err != nil {
			// Clients that close (EOF) or reset (wrk at its end) are normal.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				fmt.Fprintln(os.Stderr, "backend: request:", err)
			}
			return
		}
		if tm != nil {
			if bw.Buffered() > 0 {
				bw.Flush()
			}
			if s.pool != nil {
				s.pool <- struct{}{}
			}
			tm.Sleep(s.delay)
			if s.pool != nil {
				<-s.pool
			}
		}
		resp := s.keepAlive
		if !keep {
			resp = s.closing
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		bw.Write(resp)
		// Pipelined requests already read get their responses in one write.
		if br.Buffered() == 0 || !keep {
			if err := bw.Flush(); err != nil || !keep {
				return
			}
		}
	}
}

// readRequest reads one request head and discards its body. keep reports
// whether the client allows another request on the connection.
func readRequest(br *bufio.Reader) (keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	fields := bytes.Fields(line)
	if len(fields) != 3 || !bytes.HasPrefix(fields[2], []byte("HTTP/1.")) {
		return false, fmt.Errorf("malformed request line %q", bytes.TrimSpace(line))
	}
	keep = string(fields[2]) == "HTTP/1.1"
	length := int64(0)
	chunked := false
	for total := len(line); ; total += len(line) {
		if total > maxHeaderBytes {
			return false, errors.New("request head too large")
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return false, fmt.Errorf("malformed header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return false, fmt.Errorf("malformed content-length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if bytes.EqualFold(tok, []byte("close")) {
					keep = false
				} else if bytes.EqualFold(tok, []byte("keep-alive")) {
					keep = true
				}
			}
		}
	}
	if chunked {
		return keep, discardChunked(br)
	}
	_, err = io.CopyN(io.Discard, br, length)
	return keep, err
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", size)
		}
		if n == 0 {
			for {
				line, err = br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(io.Discard, br, n+2); err != nil {
			return err
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "backend:", err)
	os.Exit(1)
}
