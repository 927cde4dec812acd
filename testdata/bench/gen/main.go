// Command gen writes a synthetic Weir project for benchmarks: N pipelines of
// exactly 10 steps each, deterministic. See package benchgen for what the
// project holds and how cuecheck/ gives the cue CLI the same check weir
// makes; -lang hcl or -lang jsonnet writes the same spec as weir.hcl or
// weir.jsonnet.
//
//	go run ./testdata/bench/gen -n 1000 -o /tmp/bench-1000 [-lang cue|hcl|jsonnet]
package main

import (
	"flag"
	"fmt"
	"os"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

func main() {
	n := flag.Int("n", 100, "number of pipelines (10 steps each)")
	out := flag.String("o", "", "project folder to write (its top-level spec files are replaced)")
	layout := flag.String("layout", benchgen.Single, "single: all pipelines in pipelines.cue; split: one file per pipeline (CUE only)")
	lang := flag.String("lang", benchgen.CUE, "the spec's language: cue, hcl or jsonnet")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	// The schema weir embeds is the one the cue CLI gets, vendored.
	if err := benchgen.GenerateLang(*out, *n, *layout, *lang, schema.CUE); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
