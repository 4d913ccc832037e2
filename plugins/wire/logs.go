package wire

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// Bounds on what a plugin's output may cost the gateway's log.
const (
	// maxLogLine is the longest line logged; the rest of a longer line is
	// cut (and said to be).
	maxLogLine = 4 << 10
	// logRate and logBurst bound the lines logged per stream and second;
	// lines over it are counted and the count is logged with the next
	// line let through.
	logRate  = 100
	logBurst = 200
	// tailLines is how many of the last lines of a stream are kept for
	// error messages (why a plugin exited at start).
	tailLines = 8
)

// lineLog turns a plugin's output stream into log lines tagged with the
// plugin's name and the stream, bounded in length and rate. It is an
// io.Writer fed by one goroutine at a time (a mutex guards it anyway).
type lineLog struct {
	log    zerolog.Logger
	stream string
	level  zerolog.Level
	// skipHandshake drops go-plugin's handshake line (the first line of
	// stdout when it has the handshake's form).
	skipHandshake bool
	now           func() time.Time

	mu         sync.Mutex
	buf        []byte
	cut        bool // the line in buf is over maxLogLine: the rest is dropped
	lines      int
	tokens     float64
	last       time.Time
	suppressed int
	tail       []string
	fatal      string // the first "panic:" or "fatal error:" line
}

func newLineLog(log zerolog.Logger, stream string, level zerolog.Level) *lineLog {
	return &lineLog{log: log, stream: stream, level: level, tokens: logBurst, now: time.Now}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(l.buf); len(chunk) > room {
			chunk, l.cut = chunk[:room], true
		}
		l.buf = append(l.buf, chunk...)
		if i < 0 {
			break
		}
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a last line that has no newline.
func (l *lineLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit()
	}
}

// Tail returns the last lines written, oldest first, after the first
// "panic:" or "fatal error:" line when there was one and it is not among
// them.
func (l *lineLog) Tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	if l.fatal != "" && !slices.Contains(l.tail, l.fatal) {
		out = append(out, l.fatal, "…")
	}
	return append(out, l.tail...)
}

func (l *lineLog) emit() {
	line := strings.TrimRight(string(l.buf), "\r")
	cut := l.cut
	l.buf, l.cut = l.buf[:0], false
	l.lines++
	if l.lines == 1 && l.skipHandshake && isHandshake(line) {
		return
	}
	if strings.TrimSpace(line) == "" {
		return
	}
	if l.fatal == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		l.fatal = line
	}
	if len(l.tail) == tailLines {
		l.tail = append(l.tail[:0], l.tail[1:]...)
	}
	l.tail = append(l.tail, line)

	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return
	}
	l.tokens--
	level, msg, fields := l.level, line, map[string]any(nil)
	if e, ok := parseHCLog(line); ok {
		level, msg, fields = e.level, e.msg, e.fields
	} else if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		level = zerolog.ErrorLevel
	}
	ev := l.log.WithLevel(level).Str("stream", l.stream)
	if len(fields) > 0 {
		ev = ev.Fields(fields)
	}
	if cut {
		ev = ev.Bool("cut", true)
	}
	if l.suppressed > 0 {
		ev = ev.Int("suppressed", l.suppressed)
		l.suppressed = 0
	}
	ev.Msg(msg)
}

// isHandshake reports whether line has the form of go-plugin's handshake
// ("1|1|unix|/path|grpc|cert").
func isHandshake(line string) bool {
	parts := strings.Split(line, "|")
	return len(parts) >= 4 && parts[0] != "" && strings.Trim(parts[0], "0123456789") == ""
}

type hcEntry struct {
	level  zerolog.Level
	msg    string
	module string
	fields map[string]any
}

// parseHCLog reads one hclog JSON line ({"@level":"warn","@message":...}).
func parseHCLog(line string) (hcEntry, bool) {
	if !strings.HasPrefix(line, "{") {
		return hcEntry{}, false
	}
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return hcEntry{}, false
	}
	lv, ok1 := m["@level"].(string)
	msg, ok2 := m["@message"].(string)
	if !ok1 || !ok2 {
		return hcEntry{}, false
	}
	e := hcEntry{msg: msg, level: hcLevel(lv)}
	e.module, _ = m["@module"].(string)
	for k, v := range m {
		if !strings.HasPrefix(k, "@") {
			if e.fields == nil {
				e.fields = map[string]any{}
			}
			e.fields[k] = v
		}
	}
	return e, true
}

func hcLevel(s string) zerolog.Level {
	switch s {
	case "trace":
		return zerolog.TraceLevel
	case "debug":
		return zerolog.DebugLevel
	case "info":
		return zerolog.InfoLevel
	case "warn":
		return zerolog.WarnLevel
	}
	return zerolog.ErrorLevel
}

// hclogSink is the output of the hclog logger go-plugin logs its own
// messages to: they go to zerolog. Lines go-plugin relays from the plugin's
// stderr (module "host.<binary>") are dropped here, since the plugin's raw
// stderr is logged by its lineLog already.
type hclogSink struct {
	log zerolog.Logger
}

func newHCLogger(log zerolog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "host", Level: hclog.Warn, Output: hclogSink{log: log}, JSONFormat: true,
	})
}

func (s hclogSink) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		e, ok := parseHCLog(line)
		if !ok {
			s.log.Warn().Str("stream", "go-plugin").Msg(line)
			continue
		}
		if strings.HasPrefix(e.module, "host.") && e.module != "host.stdio" {
			continue
		}
		ev := s.log.WithLevel(e.level).Str("stream", "go-plugin")
		// go-plugin names the binary's path "plugin"; the host's logger
		// already holds "plugin" (the configured name).
		if p, ok := e.fields["plugin"]; ok {
			delete(e.fields, "plugin")
			e.fields["plugin_path"] = p
		}
		if len(e.fields) > 0 {
			ev = ev.Fields(e.fields)
		}
		ev.Msg(e.msg)
	}
	return len(p), nil
}
