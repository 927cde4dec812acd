// Command measure is `make bench`: it generates projects of several sizes
// (package benchgen), times `weir plan` cold and warm and `cue export` of
// the same spec in the same run, and prints a table with the ratios the
// performance targets are stated in. testdata/bench/run.sh installs the cue
// CLI and calls it; run it by hand as
//
//	go run ./testdata/bench/measure -weir bin/weir -cue $(command -v cue)
//
// Each command runs -runs times, interleaved (weir plan cold and warm, weir
// validate cold and warm, cue export), so
// a busy machine slows all of them alike; the table shows the median wall
// time, the median CPU time (user+system, which a busy machine disturbs
// less) and the median peak resident memory, read from the child's resource
// usage (no GNU time needed).
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

// The targets at the largest size, relative to cue export.
const (
	targetColdTime = 0.5
	targetColdMem  = 0.7
	targetWarmTime = 0.05
	targetGrowth   = 10.0
)

type sample = timing.Sample

type result struct {
	pipelines int
	cold      sample // weir plan, no .weir
	warm      sample // weir plan, spec unchanged
	valCold   sample // weir validate (the load and graph passes), no .weir
	valWarm   sample // weir validate, spec unchanged
	cue       sample // cue export ./cuecheck
}

func main() {
	weir := flag.String("weir", "bin/weir", "the weir binary")
	cue := flag.String("cue", "cue", "the cue binary")
	sizes := flag.String("sizes", "10,100,1000", "pipelines per project (10 steps each), comma-separated")
	runs := flag.Int("runs", 3, "runs of each command; the median is shown")
	layout := flag.String("layout", benchgen.Single, "spec layout: single or split (see benchgen)")
	keep := flag.String("dir", "", "generate the projects here and keep them (default: a temporary folder, removed)")
	flag.Parse()
	if err := run(*weir, *cue, *sizes, *runs, *layout, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(weir, cue, sizeList string, runs int, layout, dir string) error {
	var err error
	if weir, err = filepath.Abs(weir); err != nil {
		return err
	}
	if cue, err = exec.LookPath(cue); err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "weir-bench-"); err != nil {
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
	cueVersion, _ := output(cue, "version")
	fmt.Printf("weir %s\ncue  %s\n%d CPUs, GOMAXPROCS %d, %d runs each, layout %s\n",
		firstLine(mustOutput(weir, "version")), firstLine(cueVersion), runtime.NumCPU(), runtime.GOMAXPROCS(0), runs, layout)

	var results []result
	for _, n := range sizes {
		fmt.Printf("measuring %d steps...\n", n*benchgen.StepsPerPipeline)
		proj := filepath.Join(dir, fmt.Sprintf("p%d", n))
		if err := benchgen.Generate(proj, n, layout, schema.CUE); err != nil {
			return err
		}
		// Both tools must accept the spec, and weir must see 10 steps a
		// pipeline.
		out, err := output(weir, "validate", proj)
		if err != nil {
			return fmt.Errorf("weir validate of %d pipelines: %v\n%s", n, err, out)
		}
		if want := fmt.Sprintf("%d steps", n*benchgen.StepsPerPipeline); !strings.Contains(out, want) {
			return fmt.Errorf("weir validate of %d pipelines: want %s, got %s", n, want, out)
		}
		if out, err := outputIn(proj, cue, "export", "./cuecheck"); err != nil {
			return fmt.Errorf("cue export of %d pipelines: %v\n%s", n, err, out)
		}
		var cold, warm, vcold, vwarm, cu []sample
		for range runs {
			for _, m := range []struct {
				into  *[]sample
				clean bool
				cmd   []string
			}{
				{&cold, true, []string{weir, "plan", "."}},
				{&warm, false, []string{weir, "plan", "."}},
				{&vcold, true, []string{weir, "validate", "."}},
				{&vwarm, false, []string{weir, "validate", "."}},
				{&cu, false, []string{cue, "export", "./cuecheck"}},
			} {
				if m.clean {
					if err := os.RemoveAll(filepath.Join(proj, ".weir")); err != nil {
						return err
					}
				}
				s, err := timing.Measure(proj, m.cmd[0], m.cmd[1:]...)
				if err != nil {
					return err
				}
				*m.into = append(*m.into, s)
			}
		}
		r := result{pipelines: n, cold: timing.Median(cold), warm: timing.Median(warm), valCold: timing.Median(vcold), valWarm: timing.Median(vwarm), cue: timing.Median(cu)}
		results = append(results, r)
	}
	fmt.Println()
	printTable(results)
	return nil
}

func printTable(rs []result) {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	mb := func(kb int64) string { return fmt.Sprintf("%.0f", float64(kb)/1024) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	fmt.Println("Median wall seconds, CPU seconds (user+system) and peak MB. cold: no .weir; warm: again, spec unchanged.")
	fmt.Println("plan: weir plan (all passes, plan rendered); validate: weir validate (load and graph passes only);")
	fmt.Println("cue: cue export ./cuecheck of the same spec. Ratios are weir / cue.")
	fmt.Println()
	rows := [][]string{{"steps", "command", "cold s", "cold cpu", "cold MB", "warm s", "warm cpu", "warm MB", "cold/cue s", "cold/cue MB", "warm/cue s"}}
	for _, r := range rs {
		steps := strconv.Itoa(r.pipelines * benchgen.StepsPerPipeline)
		for _, c := range []struct {
			name       string
			cold, warm sample
		}{{"weir plan", r.cold, r.warm}, {"weir validate", r.valCold, r.valWarm}} {
			rows = append(rows, []string{steps, c.name,
				sec(c.cold.Wall), sec(c.cold.CPU), mb(c.cold.RSSKB),
				sec(c.warm.Wall), sec(c.warm.CPU), mb(c.warm.RSSKB),
				ratio(c.cold.Wall.Seconds(), r.cue.Wall.Seconds()),
				ratio(float64(c.cold.RSSKB), float64(r.cue.RSSKB)),
				ratio(c.warm.Wall.Seconds(), r.cue.Wall.Seconds())})
		}
		rows = append(rows, []string{steps, "cue export", sec(r.cue.Wall), sec(r.cue.CPU), mb(r.cue.RSSKB), "", "", "", "", "", ""})
	}
	timing.PrintTable(rows, 0)
	if len(rs) < 2 {
		return
	}
	a, b := rs[len(rs)-2], rs[len(rs)-1]
	from, to := a.pipelines*benchgen.StepsPerPipeline, b.pipelines*benchgen.StepsPerPipeline
	fmt.Printf("\nGrowth %d -> %d steps (cold, wall / cpu): weir plan %s / %s, weir validate %s / %s, cue export %s / %s\n", from, to,
		ratio(b.cold.Wall.Seconds(), a.cold.Wall.Seconds()), ratio(b.cold.CPU.Seconds(), a.cold.CPU.Seconds()),
		ratio(b.valCold.Wall.Seconds(), a.valCold.Wall.Seconds()), ratio(b.valCold.CPU.Seconds(), a.valCold.CPU.Seconds()),
		ratio(b.cue.Wall.Seconds(), a.cue.Wall.Seconds()), ratio(b.cue.CPU.Seconds(), a.cue.CPU.Seconds()))
	check := func(name string, got, limit float64) {
		mark := "met"
		if got > limit {
			mark = "NOT met"
		}
		fmt.Printf("  %-44s %6.2fx  (target <= %.2fx) %s\n", name, got, limit, mark)
	}
	fmt.Printf("\nTargets at %d steps:\n", to)
	for _, c := range []struct {
		name       string
		cold, warm sample
		prev       sample
	}{{"weir plan", b.cold, b.warm, a.cold}, {"weir validate", b.valCold, b.valWarm, a.valCold}} {
		check(c.name+" cold / cue export, time", c.cold.Wall.Seconds()/b.cue.Wall.Seconds(), targetColdTime)
		check(c.name+" cold / cue export, peak memory", float64(c.cold.RSSKB)/float64(b.cue.RSSKB), targetColdMem)
		check(c.name+" warm / cue export, time", c.warm.Wall.Seconds()/b.cue.Wall.Seconds(), targetWarmTime)
		check(c.name+" cold, growth", c.cold.Wall.Seconds()/c.prev.Wall.Seconds(), targetGrowth)
	}
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func outputIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

func mustOutput(name string, args ...string) string {
	out, err := output(name, args...)
	if err != nil {
		return "(unknown version)"
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
