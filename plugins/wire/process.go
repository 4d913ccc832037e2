package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/gatehouse/gatehouse/sdk/plugin"
)

// Limits are optional OS bounds on a plugin process, set with prlimit(2)
// right after the process starts (so the first instructions of its runtime
// run before they apply). Zero leaves a limit as inherited.
type Limits struct {
	// MemoryBytes bounds the process's virtual address space (RLIMIT_AS),
	// not its resident memory. The Go runtime reserves address space
	// generously: an idle Go plugin with gRPC has a VmSize of about 1.5 GiB
	// on amd64, and under about 2 GiB it may not even start ("failed to
	// reserve page summary memory"). So this stops runaway allocation (give
	// a Go plugin 3 GiB or more), not modest overuse. At the bound an
	// allocation fails, a Go plugin dies ("out of memory"), and the host
	// treats it as a crash.
	MemoryBytes uint64
	// OpenFiles bounds its open file descriptors (RLIMIT_NOFILE).
	OpenFiles uint64
	// CPUSeconds bounds the CPU time it may use over its whole life
	// (RLIMIT_CPU); at the bound it is killed (SIGXCPU, then SIGKILL) and
	// restarted. Mostly useful to stop a plugin that spins.
	CPUSeconds uint64
}

// LaunchOptions configure one plugin process.
type LaunchOptions struct {
	// Path is the plugin binary; Args its arguments (not the program
	// name); Env its whole environment ("KEY=value"): the gateway's own
	// environment is not passed on.
	Path string
	Args []string
	Env  []string
	// StartTimeout bounds the whole start: process start, handshake,
	// Configure and the first health check.
	StartTimeout time.Duration
	// SocketDir is the directory (it must exist) in which the process's own
	// socket directory is made; that directory is removed when the process
	// is killed.
	SocketDir string
	// MaxMessageBytes bounds every gRPC message, both ways.
	MaxMessageBytes int
	Limits          Limits
	// Log receives the plugin's standard output and error, line by line,
	// and go-plugin's own warnings; it should be tagged with the plugin's
	// name.
	Log  zerolog.Logger
	Conn ConnOptions
}

// Process is one running plugin process and its connection.
type Process struct {
	*Conn
	client *goplugin.Client
	run    *procRunner
	stderr *lineLog
	stdout *lineLog
	sync   [2]*lineLog
	killed sync.Once
	// runMu guards run and abandoned while the start is in progress.
	runMu     sync.Mutex
	abandoned bool
	// sockDir is the socket directory go-plugin made for this process
	// (in LaunchOptions.SocketDir), removed by Kill.
	sockDir string
}

// Launch starts the plugin binary, negotiates the protocol (go-plugin
// handshake with AutoMTLS), configures it and checks its health, all
// within o.StartTimeout and ctx. On failure nothing is left running and the
// error says what went wrong, with the last lines of the plugin's stderr.
func Launch(ctx context.Context, o LaunchOptions) (*Process, error) {
	if o.StartTimeout <= 0 {
		return nil, errors.New("start timeout must be positive")
	}
	parent, begun := ctx, time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	p := &Process{
		stderr: newLineLog(o.Log, "stderr", zerolog.InfoLevel),
		stdout: newLineLog(o.Log, "stdout", zerolog.InfoLevel),
		sync:   [2]*lineLog{newLineLog(o.Log, "stdout", zerolog.InfoLevel), newLineLog(o.Log, "stderr", zerolog.InfoLevel)},
	}
	p.stdout.skipHandshake = true
	p.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake(),
		VersionedPlugins: map[int]goplugin.PluginSet{plugin.ProtocolVersion: {plugin.PluginName: dispenser{}}},
		// go-plugin hands its command spec to RunnerFunc with the
		// environment it needs (cookie, certificates, socket directory).
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, sockDir string) (runner.Runner, error) {
			p.runMu.Lock()
			p.sockDir = sockDir
			p.runMu.Unlock()
			cmd := exec.Command(o.Path, o.Args...)
			cmd.Env = append(append([]string(nil), o.Env...), spec.Env...)
			cmd.SysProcAttr = sysProcAttr()
			r, err := newProcRunner(cmd, o.Limits, p.stdout)
			if err != nil {
				return nil, err
			}
			p.runMu.Lock()
			p.run = r
			abandoned := p.abandoned
			p.runMu.Unlock()
			if abandoned {
				r.killGroup() // kills it as soon as it starts
			}
			return r, nil
		},
		StartTimeout:     o.StartTimeout,
		AutoMTLS:         true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SkipHostEnv:      true,
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: o.SocketDir},
		Stderr:           p.stderr,
		SyncStdout:       p.sync[0],
		SyncStderr:       p.sync[1],
		Logger:           newHCLogger(o.Log),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(o.MaxMessageBytes), grpc.MaxCallSendMsgSize(o.MaxMessageBytes))},
	})
	// A start abandoned by its caller (Close) is killed at once; go-plugin
	// kills one that outlives the start timeout itself.
	started := make(chan struct{})
	defer close(started)
	go func() {
		select {
		case <-parent.Done():
			p.runMu.Lock()
			p.abandoned = true
			r := p.run
			p.runMu.Unlock()
			if r != nil {
				r.killGroup()
			}
		case <-started:
		}
	}()

	fail := func(stage string, err error) (*Process, error) {
		exited := false // by itself, before it is killed here
		if p.run != nil {
			select {
			case <-p.run.done:
				exited = true
			default:
			}
		}
		// A process that failed its start has nothing to finish: no
		// graceful shutdown (go-plugin would wait for one up to 2s).
		p.KillNow()
		if parent.Err() != nil {
			err = fmt.Errorf("start abandoned (%v): %w", parent.Err(), err)
		} else if time.Since(begun) >= o.StartTimeout {
			err = fmt.Errorf("not done within the start timeout (%s): %w", o.StartTimeout, err)
		}
		return nil, p.startError(stage, err, exited)
	}
	rpc, err := p.client.Client()
	if err != nil {
		return fail("handshake", err)
	}
	raw, err := rpc.Dispense(plugin.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	cc := raw.(*grpc.ClientConn)
	o.Conn.MaxMessageBytes = o.MaxMessageBytes
	o.Conn.PeerPID = p.run.pid
	conn, err := NewConn(ctx, cc, o.Conn)
	if err != nil {
		return fail("configure", err)
	}
	p.Conn = conn
	if err := conn.Ping(ctx); err != nil {
		return fail("health check", err)
	}
	return p, nil
}

// startError explains a failed start: the stage, the cause, how the
// process ended (if it did) and the last lines of its stderr.
func (p *Process) startError(stage string, err error, exited bool) error {
	var b strings.Builder
	// go-plugin's messages span lines; a log line should not.
	fmt.Fprintf(&b, "%s: %s", stage, strings.Join(strings.Fields(err.Error()), " "))
	if exited {
		fmt.Fprintf(&b, " (process exited: %v)", exitText(p.run.err))
	}
	p.stdout.Flush()
	if strings.Contains(err.Error(), "Unrecognized remote plugin message") {
		if len(p.stdout.Tail()) > 0 || !exited {
			b.WriteString(" — not a Gatehouse plugin, or it wrote to stdout before plugin.Serve")
		} else {
			b.WriteString(" — it exited before the handshake")
		}
	}
	p.stderr.Flush()
	p.sync[1].Flush()
	tail := append(p.stderr.Tail(), p.sync[1].Tail()...)
	if len(tail) > 0 {
		fmt.Fprintf(&b, "; its stderr ended with: %q", strings.Join(tail, " | "))
	}
	return errors.New(b.String())
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid returns the plugin's process ID.
func (p *Process) Pid() int { return p.run.pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.run.done }

// ExitError says how the process ended (valid once Done is closed).
func (p *Process) ExitError() error {
	<-p.run.done
	if p.run.err == nil {
		return errors.New("exit status 0")
	}
	return p.run.err
}

// KillNow kills the process group at once, then cleans up as Kill does:
// for a process that is hung (it would not answer a shutdown request) or
// already gone.
func (p *Process) KillNow() {
	if p.run != nil {
		p.run.killGroup()
	}
	p.Kill()
}

// killGrace is how long a plugin has to exit after it is asked to, before
// it (and its process group) is killed.
const killGrace = 2 * time.Second

// Kill stops the process: a graceful shutdown request, SIGKILL to its
// process group after killGrace, then it waits for the exit and removes
// the process's socket directory. Safe to call more than once.
func (p *Process) Kill() {
	p.killed.Do(func() {
		if p.Conn != nil {
			p.Conn.Close()
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.client.Kill()
		}()
		t := time.NewTimer(killGrace)
		select {
		case <-done:
		case <-t.C:
			if p.run != nil {
				p.run.killGroup()
			}
			<-done
		}
		t.Stop()
		if p.run != nil {
			p.run.killGroup() // children the plugin left behind
			<-p.run.done
		}
		// go-plugin removes its socket directory only for a process that
		// started (its Kill returns at once when the runner has no ID):
		// after a failed exec (binary missing, or being replaced) the
		// directory would stay until the host's own directory is removed,
		// one per failed restart.
		p.runMu.Lock()
		dir := p.sockDir
		p.runMu.Unlock()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		p.stderr.Flush()
		p.stdout.Flush()
		p.sync[0].Flush()
		p.sync[1].Flush()
	})
}

// dispenser is the host side of the go-plugin plugin: it hands out the
// gRPC connection.
type dispenser struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (dispenser) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the gateway does not serve plugins")
}

func (dispenser) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return cc, nil
}

// procRunner runs the plugin process for go-plugin. Unlike go-plugin's
// own runner it knows the exit at once (Done), without waiting for the
// pipes to drain, and kills the whole process group.
type procRunner struct {
	cmd    *exec.Cmd
	limits Limits
	stdout io.ReadCloser
	stderr io.ReadCloser
	outW   *os.File
	errW   *os.File
	pid    int
	// kill and started order a kill racing with the start: whichever
	// comes second sends the signal.
	pidA atomic.Int64
	kill atomic.Bool
	done chan struct{}
	err  error
}

func newProcRunner(cmd *exec.Cmd, limits Limits, stdoutLog io.Writer) (*procRunner, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// stdout carries the handshake; what else the plugin writes there is
	// logged too (go-plugin discards it).
	return &procRunner{cmd: cmd, limits: limits, stdout: teeCloser{outR, stdoutLog}, stderr: errR, outW: outW, errW: errW, done: make(chan struct{})}, nil
}

type teeCloser struct {
	r io.ReadCloser
	w io.Writer
}

func (t teeCloser) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		_, _ = t.w.Write(p[:n])
	}
	return n, err
}

func (t teeCloser) Close() error { return t.r.Close() }

// Start starts the process. An exec that fails with "text file busy" is
// retried a few times: a binary just written (the host's copy of it) is
// busy while a process forked elsewhere in the gateway still holds the
// descriptor it was written through, until that process's own exec
// closes it.
func (r *procRunner) Start(context.Context) error {
	err := r.cmd.Start()
	for wait := time.Millisecond; errors.Is(err, syscall.ETXTBSY) && wait <= 64*time.Millisecond; wait *= 2 {
		time.Sleep(wait)
		c := exec.Command(r.cmd.Path)
		c.Args, c.Env, c.Dir, c.SysProcAttr = r.cmd.Args, r.cmd.Env, r.cmd.Dir, r.cmd.SysProcAttr
		c.Stdout, c.Stderr = r.cmd.Stdout, r.cmd.Stderr
		r.cmd = c
		err = r.cmd.Start()
	}
	r.outW.Close()
	r.errW.Close()
	if err != nil {
		r.stdout.Close()
		r.stderr.Close()
		r.err = err
		close(r.done)
		return err
	}
	r.pid = r.cmd.Process.Pid
	r.pidA.Store(int64(r.pid))
	if r.kill.Load() {
		r.killGroup()
	}
	if err := setLimits(r.pid, r.limits); err != nil {
		r.killGroup()
		_ = r.cmd.Wait()
		r.err = err
		close(r.done)
		return fmt.Errorf("set process limits: %w", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	return nil
}

func (r *procRunner) killGroup() {
	r.kill.Store(true)
	if pid := int(r.pidA.Load()); pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (r *procRunner) Wait(context.Context) error {
	<-r.done
	return r.err
}

func (r *procRunner) Kill(context.Context) error {
	r.killGroup()
	<-r.done
	return nil
}

func (r *procRunner) ID() string {
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

func (r *procRunner) Diagnose(context.Context) string {
	select {
	case <-r.done:
		return "the plugin exited: " + exitText(r.err)
	default:
		return ""
	}
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.cmd.Path }

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
