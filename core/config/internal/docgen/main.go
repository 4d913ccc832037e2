// Command docgen writes the configuration reference, docs/config.md, from
// the doc comments in core/config/types.go and the defaults of
// config.Default. It runs from "go generate ./core/config".
package main

import (
	"flag"
	"log"
	"os"

	"github.com/gatehouse/gatehouse/core/config/internal/refdoc"
)

func main() {
	types := flag.String("types", "types.go", "the Go file declaring the configuration types")
	out := flag.String("o", "../../docs/config.md", "the Markdown file to write")
	flag.Parse()
	src, err := os.ReadFile(*types)
	if err != nil {
		log.Fatal(err)
	}
	doc, err := refdoc.Generate(src)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		log.Fatal(err)
	}
}
