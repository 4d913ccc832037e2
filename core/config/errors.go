package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one configuration error: where it is and what is wrong. Its text
// is "file:line:col: path: msg"; the parts that are unknown are left out (a
// configuration built in Go has no file or position, a syntax error no path).
type Error struct {
	File      string
	Line, Col int
	Path, Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	loc := e.File
	if e.Line > 0 {
		if loc != "" {
			loc += ":"
		}
		loc += strconv.Itoa(e.Line)
		if e.Col > 0 {
			loc += ":" + strconv.Itoa(e.Col)
		}
	}
	if loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the errors found in one configuration, in line order. Parse,
// Load and Validate return them as their error; errors.As finds each *Error.
type Errors []*Error

// Error returns one error per line, sorted by line and column.
func (es Errors) Error() string {
	sorted := slices.Clone(es)
	sortErrors(sorted)
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each error, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors sorts by position, keeping the order of errors at the same
// position (those without one, line 0, come first).
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}

// orNil returns es as an error, or nil when it is empty (never a typed nil).
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	sortErrors(es)
	return es
}
