package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Peer is one way of serving the benchmark's requests: a proxy in front of the
// backend, or the direct path to the backend itself.
type Peer interface {
	// Name labels the peer in reports; it is unique within a comparison.
	Name() string
	// Prepare checks that the peer can run here (installed, or built from the
	// tree) and returns its version. An *Unavailable error means "skip it and
	// say why"; any other error aborts the comparison.
	Prepare(ctx context.Context, e *Env) (version string, err error)
	// Start starts the peer in front of cfg.Backend and returns once it
	// answers requests.
	Start(ctx context.Context, e *Env, cfg StartConfig) (*Instance, error)
}

// StartConfig is what every peer is configured with, equally.
type StartConfig struct {
	// Backend is the backend's loopback host:port.
	Backend string
	// Conns is the number of client connections the load uses; peers keep as
	// many idle connections to the backend.
	Conns int
}

// Instance is a started peer.
type Instance struct {
	// Addr is where the load is sent.
	Addr string
	// Proc is the proxy process, nil for the direct path.
	Proc *Process
	// Overhead, when not nil, returns the gateway's own overhead distribution
	// since its last call.
	Overhead func(ctx context.Context) (*Overhead, error)
}

// Stop ends the instance's process, if any.
func (i *Instance) Stop() {
	if i.Proc != nil {
		i.Proc.Stop()
	}
}

// Overhead is Gatehouse's passport-derived overhead distribution, as its admin
// API reports it, in microseconds.
type Overhead struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// Unavailable is returned by Prepare for a peer that cannot run here.
type Unavailable struct {
	// Reason is shown in the report, e.g. "not installed".
	Reason string
}

func (u *Unavailable) Error() string { return u.Reason }

// StandardPeers returns the direct path, Gatehouse and the four peers a user
// would pick instead, in report order.
func StandardPeers() []Peer {
	return []Peer{Direct{}, &Gatehouse{}, Stdproxy{}, Nginx{}, HAProxy{}, Caddy{}}
}

// lookBin finds an installed program, also in the sbin directories that a
// non-root PATH may lack.
func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func notInstalled(name string) error {
	return &Unavailable{Reason: fmt.Sprintf("not installed (`bench/install-peers.sh` installs %s)", name)}
}

// writeConfig writes a peer's configuration file into the work directory.
func (e *Env) writeConfig(name, content string) (string, error) {
	dir := filepath.Join(e.WorkDir, "conf")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

// waitReady polls url until it answers 200, the process exits, or 15 seconds
// pass.
func waitReady(ctx context.Context, url string, proc *Process) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last string
	for {
		if proc != nil {
			if exited, err := proc.Exited(); exited {
				return fmt.Errorf("%s exited (%v) before it was ready: %s", proc.Name, err, proc.LogTail(5))
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			name := "backend"
			if proc != nil {
				name = proc.Name
			}
			return fmt.Errorf("%s not ready at %s within 15s (last: %s)", name, url, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startProxy starts a proxy process and waits until a request through it
// reaches the backend.
func (e *Env) startProxy(ctx context.Context, name, listen string, extraEnv []string, argv ...string) (*Instance, error) {
	p, err := e.StartProcess(name, RoleProxy, extraEnv, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, "http://"+listen+"/", p); err != nil {
		p.Stop()
		return nil, err
	}
	return &Instance{Addr: listen, Proc: p}, nil
}
