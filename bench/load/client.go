// Package load generates HTTP/1.1 load against a loopback target: an open-loop
// generator that sends at a constant rate and measures every latency from the
// request's intended send time (so a stall of the target is not hidden by the
// generator waiting for it, the "coordinated omission" of closed-loop tools),
// and a closed-loop generator for maximum throughput.
//
// Both use a minimal keep-alive HTTP/1.1 client over raw connections, so the
// generator costs little CPU on the core it shares with the backend. Every loop
// is bounded in time and in request count, and only loopback addresses are
// accepted as targets.
package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// MaxRequests bounds the requests of one run, whatever its rate and duration.
const MaxRequests = 20_000_000

// CheckLoopback returns an error unless addr is host:port with a loopback IP
// literal host. The harness never sends load anywhere else.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("target %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: only loopback IP addresses (127.0.0.0/8, ::1) may be targets", addr)
	}
	return nil
}

// conn is one keep-alive client connection that sends a fixed GET request.
type conn struct {
	addr string
	req  []byte
	nc   net.Conn
	br   *bufio.Reader
}

func newConn(addr, host, path string) *conn {
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-bench\r\n\r\n", path, host)
	return &conn{addr: addr, req: []byte(req)}
}

func (c *conn) dial(deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// errStatus is returned for a response that is not 200.
type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

// do sends the request and reads the whole response before deadline. On any
// error the connection is closed; the next call dials again.
func (c *conn) do(deadline time.Time) error {
	if c.nc == nil {
		if err := c.dial(deadline); err != nil {
			return err
		}
	}
	c.nc.SetDeadline(deadline)
	if _, err := c.nc.Write(c.req); err != nil {
		c.close()
		return err
	}
	status, keep, err := readResponse(c.br)
	if err != nil {
		c.close()
		return err
	}
	if !keep {
		c.close()
	}
	if status != 200 {
		return errStatus(status)
	}
	return nil
}

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
)

// readResponse reads one HTTP/1.1 response to a GET and discards its body. keep
// reports whether the connection may be reused.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	keep = line[7] == '1'
	length := int64(-1)
	chunked := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			return 0, false, fmt.Errorf("malformed header line %q", line)
		}
		name, value := line[:i], bytes.TrimSpace(line[i+1:])
		switch {
		case bytes.EqualFold(name, hdrContentLength):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || length < 0 {
				return 0, false, fmt.Errorf("malformed content-length %q", value)
			}
		case bytes.EqualFold(name, hdrTransferEncoding):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, hdrConnection):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
		return status, keep, nil
	case chunked:
		return status, keep, discardChunked(br)
	case length >= 0:
		_, err = br.Discard(int(length))
		return status, keep, err
	default:
		_, err = io.Copy(io.Discard, br)
		return status, false, err
	}
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers
				line, err = br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return err
		}
		if _, err := br.Discard(2); err != nil {
			return err
		}
	}
}

// describe shortens an error for a result's error sample.
func describe(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}
