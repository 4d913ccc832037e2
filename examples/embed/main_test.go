package main

import (
	"strings"
	"testing"
)

// TestEmbed runs the example end to end: a gateway built from a Go
// configuration serves a request to its backend and shuts down.
func TestEmbed(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "200 OK hello from the backend, request ") {
		t.Fatalf("output %q", got)
	}
}
