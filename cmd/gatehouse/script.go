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
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: gatehouse script test FILE [--cases CASES.yaml]   (a cases file may set config: for gatehouse.config)")
		return 2
	}
	fs := flag.NewFlagSet("script test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cases := fs.String("cases", "", "cases file (default: the one the script ships, FILE.cases.yaml or cases.yaml in a bundle)")
	// Accept the flag before or after the file.
	var file string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
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
// ships, as a reload would before swapping it in.
func checkScripts(cfg *config.Config, stderr io.Writer) bool {
	ok := true
	for i, sc := range cfg.Scripts {
		s, err := scripts.Compile(sc.File, gatehouse.ScriptOptions(sc, zerolog.Nop()))
		if err != nil {
			fmt.Fprintf(stderr, "scripts[%d] (%s): %v\n", i, sc.Name, err)
			ok = false
			continue
		}
		if p := s.CasesPath(); p != "" {
			rep, err := scripts.RunCases(s, p)
			if err != nil || !rep.OK() {
				fmt.Fprintf(stderr, "scripts[%d] (%s): its cases fail:\n%v%s", i, sc.Name, errOrEmpty(err), rep.String())
				ok = false
			}
		}
	}
	return ok
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error() + "\n"
}
