package scripts

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// LoadError is why a script was refused at load: a syntax error, a forbidden
// require or global, a failing top-level statement, or a bad export. Its
// Error is "file:line:column: message", the form editors jump to.
type LoadError struct {
	File   string // path of the offending file
	Line   int    // 1-based; 0 when the error is not tied to a position
	Column int    // 1-based
	Msg    string
	Err    error // the cause when it is one of the package's (ErrMemory), else nil
}

func (e *LoadError) Unwrap() error { return e.Err }

// Error returns "file:line:column: message" (or "file: message").
func (e *LoadError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// abortError is the value a guarded built-in panics with when the call's
// deadline passes inside it: it is not a JavaScript exception, so no
// try/catch or finally in the script sees it, and the runtime is discarded.
type abortError struct{ err error }

// CallError is the error of one failed call into a script: an exception
// thrown by the script, a decision of the wrong type, a deadline or a stack
// overflow. It unwraps to context.DeadlineExceeded or context.Canceled when
// the call was interrupted for that reason.
type CallError struct {
	Script  string // script name
	Version string // script version ID
	Phase   string // phase function called ("validate", ...)
	Msg     string // what went wrong, with the script position when known
	Err     error  // underlying cause, may be nil
}

// Error returns `script "name" (version id) phase: message`.
func (e *CallError) Error() string {
	return fmt.Sprintf("script %q (version %s) %s: %s", e.Script, e.Version, e.Phase, e.Msg)
}

// ErrInvalidDecision is the cause of a call whose function returned what
// is not a decision of its phase (another type, an unknown field, a value
// out of bounds): errors.Is tells it from a script that threw.
var ErrInvalidDecision = errors.New("not a decision of the phase")

// Unwrap returns the cause: context.DeadlineExceeded or context.Canceled for
// an interrupted call, the goja exception for a thrown one.
func (e *CallError) Unwrap() error { return e.Err }

// wrapPrefix is prepended, on the same line, to every module's source: line
// numbers stay exact and only columns on line 1 shift.
const wrapPrefix = "(function (exports, require, module, __filename, __dirname) {"

// position converts a position in wrapped source to one in the file.
func unwrapPos(line, col int) (int, int) {
	if line == 1 {
		col -= len(wrapPrefix)
		if col < 1 {
			col = 1
		}
	}
	return line, col
}

// parseErr converts a goja parser error into a LoadError.
func parseErr(path string, err error) *LoadError {
	var list parser.ErrorList
	var one *parser.Error
	switch {
	case errors.As(err, &list) && len(list) > 0:
		one = list[0]
	case errors.As(err, &one):
	default:
		return &LoadError{File: path, Msg: "SyntaxError: " + err.Error()}
	}
	l, c := unwrapPos(one.Position.Line, one.Position.Column)
	return &LoadError{File: path, Line: l, Column: c, Msg: "SyntaxError: " + one.Message}
}

// exceptionPos finds the innermost script position of a goja error.
func exceptionPos(err error) (file string, line, col int, ok bool) {
	var frames []goja.StackFrame
	var ex *goja.Exception
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	switch {
	case errors.As(err, &ie):
		frames = ie.Stack()
	case errors.As(err, &so):
		frames = so.Stack()
	case errors.As(err, &ex):
		frames = ex.Stack()
	}
	for _, f := range frames {
		if f.SrcName() == "" || strings.HasPrefix(f.SrcName(), "<") {
			continue
		}
		p := f.Position()
		if p.Line == 0 {
			continue
		}
		l, c := unwrapPos(p.Line, p.Column)
		return f.SrcName(), l, c, true
	}
	return "", 0, 0, false
}

// exceptionMsg returns the message of a goja error without goja's position
// suffix ("... at file:1:2(3)").
func exceptionMsg(err error) string {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		if v := ex.Value(); v != nil {
			if o, ok := v.(*goja.Object); ok {
				if m := o.Get("message"); m != nil && !goja.IsUndefined(m) {
					name := "Error"
					if n := o.Get("name"); n != nil && !goja.IsUndefined(n) {
						name = n.String()
					}
					return name + ": " + m.String()
				}
			}
			return "uncaught " + v.String()
		}
	}
	return err.Error()
}
