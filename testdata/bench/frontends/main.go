// Command frontends is the front-end comparison of `make bench`
// (testdata/bench/run-frontends.sh): it generates the same spec in CUE, HCL
// and Jsonnet (package benchgen) at several sizes, checks that the three
// give the same plan file byte for byte, then times `weir plan` on each in
// the same run, cold (no .weir) and warm (again, spec unchanged), and
// prints the medians and the ratios HCL / CUE and Jsonnet / CUE. Run it by
// hand as
//
//	go run ./testdata/bench/frontends -weir bin/weir -sizes 100,1000 -runs 5
//
// Runs are interleaved (each run times every language cold then warm, the
// languages in a rotating order), so a busy machine slows all of them
// alike. Wall time, CPU time (user+system, from the child's resource usage;
// a busy machine disturbs it less) and peak resident memory are medians
// over the runs. The target (issue 7): at 10,000 steps, HCL's and Jsonnet's
// plan time within 1.5x of CUE's.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
	"weir.dev/weir/testdata/bench/timing"
)

// target is the largest ratio of a front end's plan time to CUE's.
const target = 1.5

// result is one size: by language, cold and warm medians.
type sample = timing.Sample

type result struct {
	pipelines  int
	cold, warm map[string]sample
}

func main() {
	weir := flag.String("weir", "bin/weir", "the weir binary")
	sizes := flag.String("sizes", "100,1000", "pipelines per project (10 steps each), comma-separated")
	runs := flag.Int("runs", 5, "runs of each command; the median is shown")
	keep := flag.String("dir", "", "generate the projects here and keep them (default: a temporary folder, removed)")
	flag.Parse()
	if err := run(*weir, *sizes, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(weir, sizeList string, runs int, dir string) error {
	var err error
	if weir, err = filepath.Abs(weir); err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "weir-bench-frontends-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var sizes []int
	for _, s := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	if runs < 1 {
		return fmt.Errorf("bad number of runs %d", runs)
	}
	ver, _ := exec.Command(weir, "version").CombinedOutput()
	fmt.Printf("weir %s\n%d CPUs, GOMAXPROCS %d, %d runs each\n", firstLine(string(ver)), runtime.NumCPU(), runtime.GOMAXPROCS(0), runs)

	langs := benchgen.Languages
	var results []result
	for _, n := range sizes {
		fmt.Printf("measuring %d steps...\n", n*benchgen.StepsPerPipeline)
		projs := map[string]string{}
		var plans [][]byte
		for _, lang := range langs {
			proj := filepath.Join(dir, fmt.Sprintf("p%d-%s", n, lang))
			projs[lang] = proj
			if err := benchgen.GenerateLang(proj, n, benchgen.Single, lang, schema.CUE); err != nil {
				return err
			}
			// Every language must give the same plan file.
			planFile := filepath.Join(dir, fmt.Sprintf("p%d-%s.plan", n, lang))
			if _, err := timing.Measure(proj, weir, "plan", "-o", planFile, "."); err != nil {
				return err
			}
			b, err := os.ReadFile(planFile)
			if err != nil {
				return err
			}
			if len(plans) > 0 && !bytes.Equal(b, plans[0]) {
				return fmt.Errorf("%d pipelines: the %s spec's plan file differs from the %s spec's (%s)", n, lang, langs[0], planFile)
			}
			plans = append(plans, b)
		}
		cold, warm := map[string][]sample{}, map[string][]sample{}
		for r := range runs {
			for i := range langs {
				lang := langs[(i+r)%len(langs)]
				if err := os.RemoveAll(filepath.Join(projs[lang], ".weir")); err != nil {
					return err
				}
				for _, into := range []map[string][]sample{cold, warm} {
					s, err := timing.Measure(projs[lang], weir, "plan", ".")
					if err != nil {
						return err
					}
					into[lang] = append(into[lang], s)
				}
			}
		}
		res := result{pipelines: n, cold: map[string]sample{}, warm: map[string]sample{}}
		for _, lang := range langs {
			res.cold[lang], res.warm[lang] = timing.Median(cold[lang]), timing.Median(warm[lang])
		}
		results = append(results, res)
	}
	fmt.Println()
	printTable(results, langs)
	return nil
}

func printTable(rs []result, langs []string) {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	mb := func(kb int64) string { return fmt.Sprintf("%.0f", float64(kb)/1024) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	fmt.Println("weir plan of the same generated spec in each language: median wall seconds, CPU seconds")
	fmt.Println("(user+system) and peak MB. cold: no .weir; warm: again, spec unchanged. Ratios are to CUE's.")
	fmt.Println()
	rows := [][]string{{"steps", "spec", "cold s", "cold cpu", "cold MB", "warm s", "warm cpu", "warm MB",
		"cold/cue s", "cold/cue cpu", "cold/cue MB", "warm/cue s", "warm/cue cpu"}}
	for _, r := range rs {
		steps := strconv.Itoa(r.pipelines * benchgen.StepsPerPipeline)
		base, baseWarm := r.cold[benchgen.CUE], r.warm[benchgen.CUE]
		for _, lang := range langs {
			c, w := r.cold[lang], r.warm[lang]
			row := []string{steps, lang, sec(c.Wall), sec(c.CPU), mb(c.RSSKB), sec(w.Wall), sec(w.CPU), mb(w.RSSKB)}
			if lang == benchgen.CUE {
				row = append(row, "", "", "", "", "")
			} else {
				row = append(row,
					ratio(c.Wall.Seconds(), base.Wall.Seconds()), ratio(c.CPU.Seconds(), base.CPU.Seconds()),
					ratio(float64(c.RSSKB), float64(base.RSSKB)),
					ratio(w.Wall.Seconds(), baseWarm.Wall.Seconds()), ratio(w.CPU.Seconds(), baseWarm.CPU.Seconds()))
			}
			rows = append(rows, row)
		}
	}
	timing.PrintTable(rows, 0)
	last := rs[len(rs)-1]
	fmt.Printf("\nTarget at %d steps: plan time within %.1fx of CUE's (wall; CPU shown too)\n", last.pipelines*benchgen.StepsPerPipeline, target)
	for _, lang := range langs {
		if lang == benchgen.CUE {
			continue
		}
		for _, c := range []struct {
			name      string
			got, base sample
		}{{"cold", last.cold[lang], last.cold[benchgen.CUE]}, {"warm", last.warm[lang], last.warm[benchgen.CUE]}} {
			wall := c.got.Wall.Seconds() / c.base.Wall.Seconds()
			cpu := c.got.CPU.Seconds() / c.base.CPU.Seconds()
			mark := "met"
			if wall > target {
				mark = "NOT met"
			}
			fmt.Printf("  %-8s %s / cue: %5.2fx wall, %5.2fx cpu  %s\n", lang, c.name, wall, cpu, mark)
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
