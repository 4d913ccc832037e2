package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/scripts"
)

// cmdScript runs `gatehouse script test FILE --cases CASES.yaml`: the edit
// and test loop of a script author.
func cmdScript(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: gatehouse script test FILE [--cases CASES.yaml]   (a cases file may set config: for gatehouse.config)"
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("script test", flag.ContinueOnError)
	cases := fs.String("cases", "", "cases file (default: the one the script ships, FILE.cases.yaml or cases.yaml in a bundle)")
	// Accept the flag before or after the file.
	var file string
	rest := args[1:]
	for len(rest) > 0 {
		if code, done := parseFlags(fs, rest, stdout, stderr); done {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		if file != "" {
			fmt.Fprintln(stderr, "script test: one script at a time")
			return 2
		}
		file, rest = fs.Arg(0), fs.Args()[1:]
	}
	if file == "" {
		fmt.Fprintln(stderr, "script test: name the script file or bundle directory")
		return 2
	}
	opts := scripts.DefaultOptions()
	s, err := scripts.Compile(file, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	path := *cases
	if path == "" {
		path = s.CasesPath()
	}
	if path == "" {
		fmt.Fprintf(stdout, "%s: compiles (version %s, phases %s); no cases to run\n", file, s.ID(), s.Phases())
		return 0
	}
	rep, err := scripts.RunCases(s, path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, strings.TrimRight(rep.String(), "\n"))
	if !rep.OK() {
		return 1
	}
	return 0
}

// checkScripts compiles every configured script and runs the cases it
// ships, as run does before a script serves; errors are worded as run's.
func checkScripts(cfg *config.Config) config.Errors {
	var es config.Errors
	for i, sc := range cfg.Scripts {
		path := fmt.Sprintf("scripts[%d].file", i)
		s, err := scripts.Compile(sc.File, gatehouse.ScriptOptions(sc, zerolog.Nop()))
		if err == nil {
			if p := s.CasesPath(); p != "" {
				var rep scripts.CaseReport
				if rep, err = scripts.RunCases(s, p); err == nil && !rep.OK() {
					err = &scripts.CasesError{Report: rep}
				}
			}
		}
		if err != nil {
			es = append(es, cfg.ErrorAt(path, err.Error()))
		}
	}
	return es
}
