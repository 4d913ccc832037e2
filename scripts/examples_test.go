package scripts

import (
	"path/filepath"
	"testing"
)

// The examples in examples/scripts are part of the documentation: each must
// compile and pass the cases it ships.
func TestExamplesPassTheirCases(t *testing.T) {
	for _, name := range []string{"validate.js", "shape.js", "route", "respond.js"} {
		t.Run(name, func(t *testing.T) {
			s, err := Compile(filepath.Join("..", "examples", "scripts", name), DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if s.CasesPath() == "" {
				t.Fatal("the example ships no cases file")
			}
			rep, err := RunCases(s, s.CasesPath())
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Passed == 0 {
				t.Fatalf("%s", rep)
			}
			t.Logf("%s: phases %v, %d cases passed", s.Name(), s.Phases(), rep.Passed)
		})
	}
}
