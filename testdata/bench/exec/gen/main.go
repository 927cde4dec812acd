// Command gen writes the executor benchmark's project: n no-op tasks, each
// running `true <i>` (distinct commands, so distinct cache keys), task i
// needing task i-w when i >= w: a DAG of width w. Beside the weir project it
// writes the equivalent Makefile, so `make -j2` runs the same DAG. The output
// is deterministic.
//
//	go run ./testdata/bench/exec/gen -n 10000 -w 100 -o /tmp/exec-bench
package main

import (
	"flag"
	"fmt"
	"os"

	"weir.dev/weir/testdata/bench/exec/execgen"
)

func main() {
	n := flag.Int("n", 10000, "number of steps")
	w := flag.Int("w", 100, "width of the DAG (step i needs step i-w)")
	out := flag.String("o", "", "folder to write weir.cue and Makefile into")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 || *n < 1 || *w < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := execgen.Write(*out, *n, *w); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
