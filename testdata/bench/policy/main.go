// Command policy is the policy part of `make bench` (run-policy.sh
// installs the opa CLI and calls it). On the generated 10,000-step spec
// (package benchgen, 1,000 pipelines; ten feature sets given a PII column
// so the policies have findings to report) it times, in the same run:
//
//   - weir policy check, the spec's evaluation cached (weir validate ran
//     first), so the policy pass dominates;
//   - opa eval of the same bundle, data and query over the same input, as
//     `weir policy check --dump-input` writes them;
//   - weir review --base HEAD, the spec committed as the base and ten
//     trainings' search changed in the work tree as the head, with no .weir
//     (a fresh checkout, as in CI);
//   - one cold weir plan (no .weir) of the same project.
//
// It first checks that weir and opa report the same number of findings.
// Each command runs -runs times, interleaved, so a busy machine slows all
// of them alike; the table shows the median and best wall time, the median
// CPU time (user+system, which a busy machine disturbs less) and the
// median peak resident memory, read from the child's resource usage (no
// GNU time needed), and the ratios the targets are stated in:
//
//	go run ./testdata/bench/policy -weir bin/weir -opa PATH/TO/opa
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
	"weir.dev/weir/testdata/bench/timing"
)

// sample is one timed run (testdata/bench/timing).
type sample = timing.Sample

// measure times a command; exit status 1 is a result (policy denials), not
// a failure.
func measure(dir, name string, args ...string) (sample, error) {
	return timing.MeasureExit([]int{1}, dir, name, args...)
}

// The targets at 10,000 steps.
const (
	targetCheck  = 0.5 // weir policy check / opa eval, wall time
	targetReview = 2.5 // weir review / one cold weir plan, wall time
)

// changedTrainings is how many pipelines the head revision changes.
const changedTrainings = 10

func main() {
	weir := flag.String("weir", "bin/weir", "the weir binary")
	opa := flag.String("opa", "opa", "the opa binary")
	pipelines := flag.Int("pipelines", 1000, "pipelines in the generated project (10 steps each)")
	runs := flag.Int("runs", 3, "runs of each command; the median and the best are shown")
	keep := flag.String("dir", "", "generate the project here and keep it (default: a temporary folder, removed)")
	flag.Parse()
	if err := run(*weir, *opa, *pipelines, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(weir, opa string, n, runs int, dir string) error {
	var err error
	if weir, err = filepath.Abs(weir); err != nil {
		return err
	}
	if opa, err = exec.LookPath(opa); err != nil {
		return err
	}
	if opa, err = filepath.Abs(opa); err != nil {
		return err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("weir review needs git: %v", err)
	}
	if n < 10 || runs < 1 {
		return fmt.Errorf("need at least 10 pipelines and 1 run")
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "weir-bench-policy-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	proj, dump := filepath.Join(dir, "project"), filepath.Join(dir, "dump")
	for _, d := range []string{proj, dump} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	opaVersion, _ := output("", opa, "version")
	fmt.Printf("%s\nopa %s\n%d CPUs, GOMAXPROCS %d, %d runs each\n",
		firstLine(mustOutput(weir, "version")), strings.TrimPrefix(firstLine(opaVersion), "Version: "), runtime.NumCPU(), runtime.GOMAXPROCS(0), runs)

	steps := n * benchgen.StepsPerPipeline
	fmt.Printf("generating %d steps (%d pipelines) in %s...\n", steps, n, proj)
	if err := project(proj, n); err != nil {
		return err
	}
	// The evaluation cached, as weir policy check finds it after any
	// weir command; weir must see 10 steps a pipeline.
	out, err := output(proj, weir, "validate", ".")
	if err != nil {
		return fmt.Errorf("weir validate: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("%d steps", steps); !strings.Contains(out, want) {
		return fmt.Errorf("weir validate: want %s, got %s", want, out)
	}

	// Both evaluations must agree before they are timed.
	if out, err := outputExit(proj, weir, "policy", "check", "--dump-input", dump, "."); err != nil {
		return fmt.Errorf("weir policy check --dump-input: %v\n%s", err, out)
	}
	opaArgs := []string{"eval", "-d", filepath.Join(dump, "policies"), "-d", filepath.Join(dump, "data.json"),
		"-i", filepath.Join(dump, "input.json"), "--format=raw"}
	query, err := os.ReadFile(filepath.Join(dump, "query.rego"))
	if err != nil {
		return err
	}
	opaArgs = append(opaArgs, strings.TrimSpace(string(query)))
	weirFindings, err := countWeir(proj, weir)
	if err != nil {
		return err
	}
	opaFindings, err := countOPA(proj, opa, opaArgs)
	if err != nil {
		return err
	}
	if weirFindings != opaFindings || weirFindings == 0 {
		return fmt.Errorf("weir policy check reports %d findings and opa eval %d over the same input: they must agree (and not be 0)", weirFindings, opaFindings)
	}
	inputSize := int64(0)
	if st, err := os.Stat(filepath.Join(dump, "input.json")); err == nil {
		inputSize = st.Size()
	}
	reruns, err := checkReview(proj, weir)
	if err != nil {
		return err
	}
	fmt.Printf("%d findings from each of weir policy check and opa eval (input.json %.1f MB); the review re-runs %d steps\n",
		weirFindings, float64(inputSize)/1e6, reruns)

	var plan, check, opaEval, review []sample
	for r := range runs {
		fmt.Printf("round %d of %d...\n", r+1, runs)
		for _, m := range []struct {
			into  *[]sample
			clean bool
			name  string
			args  []string
		}{
			{&plan, true, weir, []string{"plan", "."}},
			// The plan above left the evaluation cached.
			{&check, false, weir, []string{"policy", "check", "."}},
			{&opaEval, false, opa, opaArgs},
			{&review, true, weir, []string{"review", "--base", "HEAD", "."}},
		} {
			if m.clean {
				if err := os.RemoveAll(filepath.Join(proj, ".weir")); err != nil {
					return err
				}
			}
			s, err := measure(proj, m.name, m.args...)
			if err != nil {
				return err
			}
			*m.into = append(*m.into, s)
		}
	}
	fmt.Println()
	printTable(steps, map[string][]sample{"check": check, "opa": opaEval, "review": review, "plan": plan})
	return nil
}

// project generates the spec, commits it as the base revision of a git
// repository and changes the search of changedTrainings trainings in the
// work tree (the head).
func project(dir string, n int) error {
	if err := benchgen.Generate(dir, n, benchgen.Single, schema.CUE); err != nil {
		return err
	}
	// Ten feature sets keep a PII column: ten findings of weir.pii.features.
	var b strings.Builder
	b.WriteString("package bench\n\n// Feature sets that keep a PII column, so the policies have findings.\n")
	for i := range 10 {
		fmt.Fprintf(&b, "features: p%04d_features: columns: [\"id\", \"score\", \"kind\"]\n", i*n/10+3)
	}
	if err := os.WriteFile(filepath.Join(dir, "findings.cue"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(".weir/\n"), 0o644); err != nil {
		return err
	}
	git := func(args ...string) error {
		args = append([]string{"-c", "user.name=weir bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"}, args...)
		if out, err := output(dir, "git", args...); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "base: the generated spec"}} {
		if err := git(args...); err != nil {
			return err
		}
	}
	// The head: a new learning rate in the search of the first trainings.
	path := filepath.Join(dir, "pipelines.cue")
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(src)
	const from, to = "lr: [0.01, 0.1]", "lr: [0.01, 0.2]"
	for i := range changedTrainings {
		at := strings.Index(text, fmt.Sprintf("training: p%04d_model:", i))
		if at < 0 {
			return fmt.Errorf("%s: no training p%04d_model", path, i)
		}
		j := strings.Index(text[at:], from)
		if j < 0 {
			return fmt.Errorf("%s: training p%04d_model has no %s", path, i, from)
		}
		text = text[:at+j] + to + text[at+j+len(from):]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// countWeir is the number of findings weir policy check reports.
func countWeir(dir, weir string) (int, error) {
	out, err := stdoutExit(dir, weir, "policy", "check", "-f", "json", ".")
	if err != nil {
		return 0, fmt.Errorf("weir policy check -f json: %v", err)
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("weir policy check -f json: %v", err)
	}
	return len(doc.Findings), nil
}

// countOPA is the number of finding values opa eval gives: the query binds
// each rule's variable to [set of findings], or [] when undefined.
func countOPA(dir, opa string, args []string) (int, error) {
	args = slices.Clone(args)
	for i, a := range args {
		if a == "--format=raw" {
			args[i] = "--format=json"
		}
	}
	out, err := stdoutExit(dir, opa, args...)
	if err != nil {
		return 0, fmt.Errorf("opa eval: %v", err)
	}
	var doc struct {
		Result []struct {
			Bindings map[string][]any `json:"bindings"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("opa eval --format=json: %v", err)
	}
	if len(doc.Result) != 1 {
		return 0, fmt.Errorf("opa eval: %d results, want 1", len(doc.Result))
	}
	count := 0
	for _, v := range doc.Result[0].Bindings {
		if len(v) == 0 {
			continue
		}
		switch x := v[0].(type) {
		case []any:
			count += len(x)
		case nil, bool, string:
			if x != nil && x != false && x != "" {
				count++
			}
		default:
			count++
		}
	}
	return count, nil
}

// checkReview runs weir review once and returns how many steps it says
// re-run, which must be some.
func checkReview(dir, weir string) (int, error) {
	os.RemoveAll(filepath.Join(dir, ".weir"))
	out, err := stdoutExit(dir, weir, "review", "--base", "HEAD", "-f", "json", ".")
	if err != nil {
		return 0, fmt.Errorf("weir review: %v", err)
	}
	var doc struct {
		Reruns []json.RawMessage `json:"reruns"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("weir review -f json: %v", err)
	}
	if len(doc.Reruns) > 0 {
		return len(doc.Reruns), nil
	}
	return 0, fmt.Errorf("weir review of %d changed trainings reports no step re-running", changedTrainings)
}

func best(ss []sample) time.Duration {
	b := ss[0].Wall
	for _, s := range ss[1:] {
		b = min(b, s.Wall)
	}
	return b
}

func printTable(steps int, all map[string][]sample) {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	fmt.Printf("%d steps. Median wall seconds, best wall, median CPU seconds (user+system) and peak MB.\n", steps)
	fmt.Println("check: weir policy check, evaluation cached; opa: opa eval of the same bundle over the dumped input;")
	fmt.Println("review: weir review --base HEAD, no .weir (two revisions compiled); plan: weir plan, no .weir.")
	fmt.Println()
	rows := [][]string{{"command", "wall s", "best s", "cpu s", "MB"}}
	for _, c := range []struct{ key, name string }{
		{"check", "weir policy check"}, {"opa", "opa eval"}, {"review", "weir review"}, {"plan", "weir plan (cold)"},
	} {
		m := timing.Median(all[c.key])
		rows = append(rows, []string{c.name, sec(m.Wall), sec(best(all[c.key])), sec(m.CPU), strconv.FormatInt(m.RSSKB/1024, 10)})
	}
	timing.PrintTable(rows, 1)

	fmt.Printf("\nTargets at %d steps (ratio of median wall times; of best wall and of CPU times in brackets):\n", steps)
	check := func(name, a, b string, limit float64) {
		ma, mb := timing.Median(all[a]), timing.Median(all[b])
		got := ma.Wall.Seconds() / mb.Wall.Seconds()
		mark := "met"
		if got > limit {
			mark = "NOT met"
		}
		fmt.Printf("  %-32s %5.2fx  (best %.2fx, cpu %.2fx)  target <= %.2fx  %s\n", name, got,
			best(all[a]).Seconds()/best(all[b]).Seconds(), ma.CPU.Seconds()/mb.CPU.Seconds(), limit, mark)
	}
	check("weir policy check / opa eval", "check", "opa", targetCheck)
	check("weir review / weir plan cold", "review", "plan", targetReview)
}

// output runs a command in dir (the current folder when empty) and returns
// its combined output.
func output(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// outputExit is output with exit status 1 (policy denials) a success.
func outputExit(dir, name string, args ...string) (string, error) {
	out, err := output(dir, name, args...)
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		err = nil
	}
	return out, err
}

// stdoutExit runs a command in dir and returns its standard output, exit
// status 1 being a success.
func stdoutExit(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	return out, nil
}

func mustOutput(name string, args ...string) string {
	out, err := output("", name, args...)
	if err != nil {
		return "(unknown version)"
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
