package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/compiler"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/compiler/policy"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// policyOptions reads the spec's policy section: the built-in bundle (unless
// turned off), the project's policies/ folder and the spec's bundles, the
// data, enforcement overrides, waivers and timeout.
func policyOptions(dir string, p *schema.Project) (policy.Options, diag.Diagnostics) {
	opts := policy.Options{Builtin: true}
	if d := filepath.Join(dir, "policies"); isDir(d) {
		opts.Dirs = append(opts.Dirs, d)
	}
	pc := p.Policy
	if pc == nil {
		return opts, nil
	}
	if pc.Builtin != nil {
		opts.Builtin = *pc.Builtin
	}
	var ds diag.Diagnostics
	for _, b := range pc.Bundles {
		path := b
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, b)
		}
		if _, err := os.Stat(path); err != nil {
			ds = append(ds, diag.Errorf("policy-bundle", "", nil, "policy.bundles: %s does not exist", b))
			continue
		}
		if filepath.Clean(path) != filepath.Clean(filepath.Join(dir, "policies")) {
			opts.Dirs = append(opts.Dirs, path)
		}
	}
	opts.Config, opts.Enforcement, opts.Waivers = pc.Data, pc.Enforcement, pc.Waivers
	if pc.Timeout != "" {
		opts.Timeout, _ = time.ParseDuration(pc.Timeout)
	}
	return opts, ds
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// policyContext is who runs weir and on what commit.
func policyContext(dir string) policy.Context {
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	return policy.Context{User: currentUser(), Git: policy.Git{Commit: git("rev-parse", "HEAD"), Branch: git("rev-parse", "--abbrev-ref", "HEAD")},
		Environment: os.Getenv("WEIR_ENV")}
}

// startPolicyContext runs policyContext (three git commands) on another
// goroutine; the function returned waits for it.
func startPolicyContext(dir string) func() policy.Context {
	who := make(chan policy.Context, 1)
	go func() { who <- policyContext(dir) }()
	return sync.OnceValue(func() policy.Context { return <-who })
}

// policyPass is the compiler's policy pass as the CLI wires it.
func policyPass(dir string, lock policy.Lock, changes any) compiler.PolicyFunc {
	return policyPassThen(dir, lock, changes, nil, nil)
}

// policyPassThen is policyPass calling then, when set, with the engine and
// the input it evaluated (weir policy check reads the rules from the same
// engine, and --dump-input writes the input). who, when set, gives the
// policy context (see startPolicyContext); else the pass starts it.
func policyPassThen(dir string, lock policy.Lock, changes any, who func() policy.Context, then func(*policy.Engine, policy.Input) error) compiler.PolicyFunc {
	return func(ctx context.Context, ld *load.Result, p *schema.Plan) ([]schema.Finding, diag.Diagnostics) {
		// The input document and its evaluation are a large heap that
		// lives until the findings are made (60 MB at 10,000 steps): a
		// higher GC target while they are built saves most collections
		// (a tenth of weir policy check's CPU). GOGC, when set, wins.
		if os.Getenv("GOGC") == "" {
			defer debug.SetGCPercent(debug.SetGCPercent(400))
		}
		// Who and which commit (three git commands) while the policies
		// compile.
		if who == nil {
			who = startPolicyContext(dir)
		}
		opts, ds := policyOptions(dir, ld.Project)
		if ds.HasErrors() {
			return nil, ds
		}
		eng, ds2 := policy.New(ctx, opts)
		ds = append(ds, ds2...)
		if ds.HasErrors() {
			return nil, ds
		}
		in := policy.Input{Project: ld.Project, Plan: p, Lock: lock, Changes: changes, Context: who()}
		findings, ds3 := eng.Eval(ctx, in, ld.Sources)
		ds = append(ds, ds3...)
		if then != nil {
			if err := then(eng, in); err != nil {
				ds = append(ds, diag.Errorf("policy-dump", "", nil, "%v", err))
			}
		}
		return findings, ds
	}
}

func ruleMeta(rules []policy.RuleInfo) []view.RuleMeta {
	out := make([]view.RuleMeta, len(rules))
	for i, r := range rules {
		out[i] = view.RuleMeta{ID: r.ID, Title: r.Title, Description: r.Description, Severity: r.Level(), Remediation: r.Remediation}
	}
	return out
}

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Compliance policies: check a project, test policies, document rules",
	}
	var format, dumpDir string
	var trace bool
	check := &cobra.Command{
		Use:   "check [DIR]",
		Short: "Evaluate the policies over the project and its plan",
		Long: `Check evaluates the built-in policies, the project's policies/ folder and the
spec's policy bundles over the compiled project and its plan. Formats: text,
json, sarif, github, markdown, junit, tap, table. Exit 1 on any denial that no
waiver accepts.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := projectDir(args)
			// The cached evaluation, the graph and the policy input
			// are one large heap that lives to the end: as in the
			// policy pass, a higher GC target saves most collections
			// (a sixth of the CPU at 10,000 steps, for the same peak
			// memory). GOGC, when set, wins.
			if os.Getenv("GOGC") == "" {
				defer debug.SetGCPercent(debug.SetGCPercent(400))
			}
			// The policies compile while the spec loads, for the
			// policy pass to find them compiled unless the spec's
			// policy section names other modules; and git tells the
			// commit and branch.
			warm, _ := policyOptions(dir, &schema.Project{})
			policy.Warm(warm)
			who := startPolicyContext(dir)
			opts := compileOptions(dir)
			proj, err := openProject(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer proj.Close()
			if ps, err := newPlanState(cmd.Context(), proj); err == nil {
				opts.State = ps
			}
			opts.Lower = nil
			// One engine evaluates the policies and names their rules.
			var eng *policy.Engine
			opts.Policy = policyPassThen(dir, policy.Lock{}, nil, who, func(e *policy.Engine, in policy.Input) error {
				eng = e
				if dumpDir == "" {
					return nil
				}
				return e.Dump(dumpDir, in)
			})
			if trace {
				opts.Trace = traceTo(cmd)
			}
			res, ds := compiler.Compile(cmd.Context(), opts)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			warn(cmd.ErrOrStderr(), ds)
			var rules []view.RuleMeta
			if eng != nil {
				rules = ruleMeta(eng.Rules())
			}
			spec := "weir.cue"
			if len(res.Load.Files) > 0 {
				spec = res.Load.Files[0]
			}
			if err := view.RenderFindings(cmd.OutOrStdout(), format, res.Plan.Findings, rules, spec); err != nil {
				return err
			}
			if len(deniedBy(res.Plan)) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	check.Flags().StringVarP(&format, "format", "f", "text", "output `FORMAT`: text, json, sarif, github, markdown, junit, tap, table")
	// --dump-input DIR writes the input, data, modules and query the
	// policies are evaluated with, for `opa eval` (make bench; see
	// policy.Engine.Dump).
	check.Flags().StringVar(&dumpDir, "dump-input", "", "write the policy input, data, modules and query into `DIR`, for opa eval")
	check.Flags().MarkHidden("dump-input")
	check.Flags().BoolVar(&trace, "trace", false, "print the time each compiler pass takes")
	check.Flags().MarkHidden("trace")
	var verbose bool
	test := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the built-in and the project's Rego unit tests, with coverage",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := projectDir(args)
			opts := policy.Options{Builtin: true}
			if d := filepath.Join(dir, "policies"); isDir(d) {
				opts.Dirs = append(opts.Dirs, d)
			}
			rep, ds := policy.Test(cmd.Context(), opts)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			out := cmd.OutOrStdout()
			for _, r := range rep.Results {
				if r.Passed && !verbose {
					continue
				}
				status := "PASS"
				switch {
				case r.Skipped:
					status = "SKIP"
				case r.Error != "":
					status = "ERROR " + r.Error
				case !r.Passed:
					status = "FAIL"
				}
				fmt.Fprintf(out, "%s:%d: %s.%s: %s\n", r.File, r.Line, r.Package, r.Name, status)
			}
			for _, f := range rep.Files {
				fmt.Fprintf(out, "coverage %5.1f%%  %s\n", f.Coverage, f.File)
			}
			fmt.Fprintf(out, "%d passed, %d failed; coverage %.1f%%\n", rep.Passed(), rep.Failed(), rep.Coverage)
			if !rep.OK() {
				return exitError{1}
			}
			return nil
		},
	}
	test.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	docs := &cobra.Command{
		Use:   "docs",
		Short: "Print a Markdown catalogue of the built-in rules",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := policy.Options{Builtin: true}
			if len(args) > 0 {
				if d := filepath.Join(args[0], "policies"); isDir(d) {
					opts.Dirs = append(opts.Dirs, d)
				}
			}
			eng, ds := policy.New(cmd.Context(), opts)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			fmt.Fprint(cmd.OutOrStdout(), policy.Docs(eng.Rules()))
			return nil
		},
	}
	cmd.AddCommand(check, test, docs)
	return cmd
}
