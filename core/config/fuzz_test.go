package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics, that it fails only with Errors,
// and that a configuration it accepts validates and survives a YAML dump:
// the dump parses back to an equal configuration.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(inheritanceSrc))
	f.Add([]byte(exoticSrc))
	f.Add([]byte(manyErrors))
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if c != nil || !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Parse = %v, %#v: want nil and non-empty Errors", c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that does not validate: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		back, err := Parse("dump.yaml", out)
		if err != nil {
			t.Fatalf("the dump does not parse: %v\n%s", err, out)
		}
		if !back.Equal(c) {
			again, _ := yaml.Marshal(back)
			t.Fatalf("the dump parses to a different configuration:\n%s\nwant:\n%s", again, out)
		}
	})
}
