package config_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/core/config/internal/refdoc"
)

// TestReferenceDocCurrent fails when docs/config.md no longer matches the
// doc comments of types.go or the defaults of Default.
func TestReferenceDocCurrent(t *testing.T) {
	src, err := os.ReadFile("types.go")
	if err != nil {
		t.Fatal(err)
	}
	want, err := refdoc.Generate(src)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	got, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/config.md is out of date: run go generate ./core/config")
	}
}
