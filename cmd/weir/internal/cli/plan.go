package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/compiler"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/runtime/builtin"
	"weir.dev/weir/schema"
)

type planFlags struct {
	out          string
	json         bool
	detailedExit bool
	targets      []string
	replace      []string
	trace        bool
	offline      bool
}

func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what apply would run, reuse and change, and why",
		Long: `Plan compiles the spec in DIR (default .) and compares it with the state:
  ↻ run      the step executes (the reason says why)
  = cached   a verified result is reused
  + create   a resource is created (deployments, schedules, aliases)
  ~ update   a resource changes in place
  - delete   a resource goes away
Exit codes with -detailed-exitcode: 0 no changes, 1 error, 2 changes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd, projectDir(args), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "write the plan file to `FILE` for weir apply")
	fl.BoolVar(&f.json, "json", false, "print the plan as JSON")
	fl.BoolVar(&f.detailedExit, "detailed-exitcode", false, "exit 2 when the plan has changes, 0 when none")
	fl.StringSliceVar(&f.targets, "target", nil, "plan only `ADDR` and what it needs (repeatable)")
	fl.StringSliceVar(&f.replace, "replace", nil, "run `ADDR` again even if cached (repeatable)")
	fl.BoolVar(&f.trace, "trace", false, "print the time each compiler pass takes")
	fl.BoolVar(&f.offline, "offline", false, "resolve images from weir.lock only (also WEIR_OFFLINE=1)")
	addSpecInputFlags(cmd)
	return cmd
}

// compileOptions are the options every command that compiles uses.
func compileOptions(dir string) compiler.Options {
	return compiler.Options{
		Dir:         dir,
		CacheDir:    weirDir(dir) + "/cache",
		Inputs:      specInputs(),
		WeirVersion: Version,
		Lower:       lowerIn(dir),
		Policy:      withImages(dir),
	}
}

// traceTo prints each compiler pass's duration to stderr.
func traceTo(cmd *cobra.Command) func(string, time.Duration) {
	return func(pass string, d time.Duration) {
		fmt.Fprintf(cmd.ErrOrStderr(), "pass %-8s %v\n", pass, d.Round(time.Microsecond))
	}
}

func runPlan(cmd *cobra.Command, dir string, f planFlags) error {
	proj, err := openProject(cmd.Context(), dir)
	if err != nil {
		return err
	}
	defer proj.Close()
	ps, err := newPlanState(cmd.Context(), proj)
	if err != nil {
		return err
	}
	opts := compileOptions(dir)
	opts.State = ps
	opts.Targets, opts.Replace = f.targets, f.replace
	opts.Resolve = imageResolver(dir, offlineMode(f.offline), cmd.ErrOrStderr())
	opts.Check = checkIn(dir)
	opts.PlanRollout = rolloutIn(dir)
	if f.trace {
		opts.Trace = traceTo(cmd)
	}
	res, ds := compiler.Compile(cmd.Context(), opts)
	if ds.HasErrors() {
		return fail(cmd.ErrOrStderr(), ds)
	}
	warn(cmd.ErrOrStderr(), ds)
	p := res.Plan
	var data []byte
	if f.out != "" || f.json {
		if data, err = p.Encode(); err != nil {
			return err
		}
	}
	if f.out != "" {
		if err := os.WriteFile(f.out, data, 0o644); err != nil {
			return fmt.Errorf("writing plan file: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	if f.json {
		out.Write(data)
	} else {
		view.Plan(out, p)
		if f.out != "" {
			fmt.Fprintf(out, "\nSaved the plan to %s. Apply exactly this plan with:\n  weir apply %s\n", f.out, f.out)
		}
	}
	if f.detailedExit && p.HasChanges() {
		return exitError{2}
	}
	return nil
}

// rolloutIn returns the plan's comparison of each rollout with what is
// live: a backend that can plan services (the kubernetes backend) is
// handed the revision apply would deploy, built as serve builds it
// (builtin.PlanRollout). A backend it could not compare with gives one
// warning, and its rollouts stay as planned.
func rolloutIn(dir string) compiler.RolloutPlanner {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	var mu sync.Mutex
	failed := map[string]bool{}
	return func(ctx context.Context, name string, cfg *schema.Backend, steps []*schema.Step, version int, why string) ([]compiler.RolloutStep, diag.Diagnostics) {
		mu.Lock()
		skip := failed[name]
		mu.Unlock()
		if skip {
			return nil, nil
		}
		b, err := resolverFor(dir).backend(name, cfg)
		if err != nil {
			return nil, nil // the lower pass or apply says so
		}
		env := builtin.ServiceEnv{RunID: "plan", WorkDir: filepath.Join(abs, ".weir", "runs", "plan", steps[0].Address),
			ProjectDir: abs, BaseEnv: baseEnv(), Secret: secretResolver(abs)}
		plans, err := builtin.PlanRollout(ctx, b, steps, version, why, env)
		if err != nil {
			mu.Lock()
			failed[name] = true
			mu.Unlock()
			return nil, diag.Diagnostics{{Severity: diag.Warning, Code: "rollout-plan", Address: steps[0].Address,
				Summary: fmt.Sprintf("backend %s: %s was not compared with what is live: %v; the plan shows it as planned", name, steps[0].Element, err)}}
		}
		out := make([]compiler.RolloutStep, len(plans))
		for i, p := range plans {
			out[i] = compiler.RolloutStep{Action: p.Action, Reason: p.Reason, Diff: p.Diff}
		}
		return out, nil
	}
}
