package scripts

import (
	"os"
	"path/filepath"
	"testing"
)

// writeScript writes src to dir/name and returns its path.
func writeScript(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// compileSrc compiles a one-file script.
func compileSrc(t testing.TB, src string, opts Options) *Script {
	t.Helper()
	s, err := Compile(writeScript(t, t.TempDir(), "s.js", src), opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}
