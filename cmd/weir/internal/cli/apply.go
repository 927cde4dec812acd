package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/compiler"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/builtin"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/schema"
)

type applyFlags struct {
	autoApprove bool
	keepGoing   bool
	parallelism int
	targets     []string
	replace     []string
	json        bool
	verbose     bool
	offline     bool
}

func newApplyCmd() *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply [DIR|PLANFILE]",
		Short: "Run what the plan says: steps that must run, reuse the rest",
		Long: `Apply runs a plan. Given a folder (default .), it plans first and asks
for confirmation on a terminal (--auto-approve skips it). Given a plan file
written by weir plan -out, it applies exactly that plan, refusing it if the
spec or the state changed since.

Ctrl-C stops launching steps, cancels running ones and exits 130; finished
steps are kept, so the next apply resumes where this one stopped.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd, projectDir(args), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	fl.BoolVar(&f.keepGoing, "keep-going", false, "after a failure, keep launching steps that do not depend on it")
	fl.IntVar(&f.parallelism, "parallelism", runtime.NumCPU(), "run at most `N` steps at once")
	fl.StringSliceVar(&f.targets, "target", nil, "apply only `ADDR` and what it needs (repeatable)")
	fl.StringSliceVar(&f.replace, "replace", nil, "run `ADDR` again even if cached (repeatable)")
	fl.BoolVar(&f.json, "json", false, "print progress as JSON events, one per line")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "stream every step's output, prefixed with its address")
	fl.BoolVar(&f.offline, "offline", false, "resolve images from weir.lock only (also WEIR_OFFLINE=1)")
	addSpecInputFlags(cmd)
	return cmd
}

func runApply(cmd *cobra.Command, arg string, f applyFlags) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var planFile *schema.Plan
	dir := arg
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		data, err := os.ReadFile(arg)
		if err != nil {
			return err
		}
		planFile, err = schema.DecodePlan(data)
		if err != nil {
			return fmt.Errorf("%s: %v", arg, err)
		}
		if len(f.targets) > 0 || len(f.replace) > 0 {
			return fmt.Errorf("--target and --replace belong to weir plan: a saved plan is applied as it is")
		}
		dir = planFile.Dir
	} else if err != nil {
		return fmt.Errorf("%s: no such project folder or plan file", arg)
	}

	proj, err := openProject(ctx, dir)
	if err != nil {
		return err
	}
	defer proj.Close()
	note := func(s string) { fmt.Fprintln(stderr, s) }
	unlock, err := proj.lock(ctx, "weir apply", note)
	if err != nil {
		return err
	}
	defer unlock()
	if runs, _, err := proj.db.MarkInterrupted(context.WithoutCancel(ctx)); err == nil && runs > 0 {
		note(fmt.Sprintf("note: %d earlier run(s) were interrupted; their finished steps are reused", runs))
	}
	ps, err := newPlanState(ctx, proj)
	if err != nil {
		return err
	}

	var p *schema.Plan
	if planFile != nil {
		if err := checkStale(ctx, planFile, ps, dir); err != nil {
			return err
		}
		p = planFile
	} else {
		opts := compileOptions(dir)
		opts.State = ps
		opts.Targets, opts.Replace = f.targets, f.replace
		opts.Resolve = imageResolver(dir, offlineMode(f.offline), stderr)
		opts.Check = checkIn(dir)
		opts.PlanRollout = rolloutIn(dir)
		res, ds := compiler.Compile(ctx, opts)
		if ds.HasErrors() {
			return fail(stderr, ds)
		}
		warn(stderr, ds)
		p = res.Plan
		if !f.json {
			view.Plan(stdout, p)
		}
		if !p.HasChanges() {
			if !f.json {
				fmt.Fprintln(stdout, "\nNothing to apply: every step's result is reused.")
			}
			return nil
		}
		if !f.autoApprove {
			ok, err := confirm(cmd.InOrStdin(), stdout)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintln(stdout, "Apply cancelled: nothing was run.")
				return exitError{1}
			}
		}
	}
	if denies := deniedBy(p); len(denies) > 0 {
		for _, d := range denies {
			fmt.Fprintln(stderr, "error: policy "+d)
		}
		return fmt.Errorf("apply refused: %d policy denial(s); fix them or add a waiver in policy.waivers", len(denies))
	}

	runID := newRunID()
	var events func(exec.Event)
	var prog *view.Progress
	if f.json {
		var flush func()
		events, flush = view.JSONEvents(stdout)
		defer flush()
	} else {
		fmt.Fprintf(stdout, "\nApplying run %s...\n", runID)
		prog = view.NewProgress(stdout, len(p.Steps), f.verbose)
		events = prog.Event
		stopTick := make(chan struct{})
		defer close(stopTick)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					prog.Tick()
				case <-stopTick:
					return
				}
			}
		}()
	}
	abs, _ := filepath.Abs(dir)
	bs, err := openBackends(ctx, dir, p.Backends)
	if err != nil {
		return err
	}
	defer bs.Close()
	bs.prepare(p.Steps)
	opts := exec.Options{
		ProjectDir:  abs,
		WorkRoot:    filepath.Join(abs, ".weir", "runs"),
		State:       proj.db,
		Store:       proj.store,
		Backends:    map[string]backend.Interface{},
		Limits:      map[string]int{},
		GPUs:        map[string]int{},
		Parallelism: f.parallelism,
		KeepGoing:   f.keepGoing,
		Builtins:    builtin.Steps(),
		Changes:     builtin.ApplyChange,
		Secret:      secretResolver(abs),
		BaseEnv:     baseEnv(),
		Events:      events,
		RunID:       runID,
		User:        currentUser(),
		Command:     "weir apply",
		AliasDigest: func(ctx context.Context, model, alias string) (string, bool) {
			return aliasDigest(ctx, proj.db, model, alias)
		},
	}
	for name := range p.Backends {
		opts.Backends[name] = bs.byName[name]
	}
	descs := describe(ctx, opts.Backends)
	for name, b := range p.Backends {
		opts.Limits[name] = b.Parallelism
		// The entry's gpus wins; else what the backend reports (a
		// cluster's GPUs), so a GPU step is not refused for want of slots.
		opts.GPUs[name] = b.GPUs
		if d := descs[name]; b.GPUs == 0 && d != nil {
			opts.GPUs[name] = d.GPUs
		}
	}
	opts.Deferred = deferredOn(descs)
	start := time.Now()
	rep, err := exec.Apply(ctx, p, opts)
	if prog != nil {
		prog.Finish()
	}
	if rep != nil && !f.json {
		view.ApplySummary(stdout, rep, time.Since(start))
	}
	switch {
	case errors.Is(err, exec.ErrCancelled):
		return exitError{130}
	case errors.Is(err, exec.ErrFailed):
		return exitError{1}
	}
	return err
}

// checkStale refuses a plan whose spec or state changed since it was made.
func checkStale(ctx context.Context, p *schema.Plan, ps *planState, dir string) error {
	if p.StateSerial != ps.Serial() {
		return fmt.Errorf("the plan is stale: the state changed since it was made (serial %d, now %d); run weir plan again", p.StateSerial, ps.Serial())
	}
	ld, ds := load.Load(ctx, dir, load.Options{CacheDir: weirDir(dir) + "/cache", Inputs: specInputs()})
	if ds.HasErrors() {
		return fmt.Errorf("the plan's spec no longer loads: run weir plan again\n%s", ds.Err())
	}
	if ld.SpecHash != p.SpecHash {
		return fmt.Errorf("the plan is stale: the spec in %s changed since it was made; run weir plan again", dir)
	}
	return nil
}

// confirm asks on a terminal; anywhere else it refuses, so a script never
// applies by accident.
func confirm(in io.Reader, out io.Writer) (bool, error) {
	f, ok := in.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return false, errors.New("refusing to apply without confirmation: not a terminal; pass --auto-approve, or apply a saved plan (weir plan -out FILE; weir apply FILE)")
	}
	fmt.Fprint(out, "\nDo you want to apply this plan? Only 'yes' will be accepted: ")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	return strings.TrimSpace(line) == "yes", nil
}

// deniedBy lists the plan's unwaived denying policy findings.
func deniedBy(p *schema.Plan) []string {
	var out []string
	for _, f := range p.Findings {
		if f.Severity == 0 && f.Waived == "" {
			loc := f.Address
			if f.Source != nil {
				loc = f.Source.String()
			}
			out = append(out, fmt.Sprintf("%s denies %s: %s", f.Rule, loc, f.Message))
		}
	}
	return out
}

// describe asks each backend what it is and can do; a backend that cannot
// answer is left out.
func describe(ctx context.Context, backends map[string]backend.Interface) map[string]*backend.Description {
	out := map[string]*backend.Description{}
	for name, b := range backends {
		if b == nil {
			continue
		}
		if d, err := b.Describe(ctx); err == nil {
			out[name] = d
		}
	}
	return out
}

// deferredOn names the steps this weir plans but does not apply: serving
// on a backend that hosts no services or without a server to run, and
// monitoring.
//
// Only a backend that answered Describe saying it hosts no services
// defers serving: one that did not answer (a cluster out of reach) is not
// taken for one without services; its deploy step runs and fails with
// the backend's own error.
func deferredOn(descs map[string]*backend.Description) func(*schema.Step) (string, bool) {
	return func(s *schema.Step) (string, bool) {
		switch s.Kind {
		case "deploy", "canary":
			if d, ok := descs[s.Backend]; ok && !d.Services {
				return fmt.Sprintf("backend %s hosts no long-lived services, and the serving gateway that would serve on it is not built", s.Backend), true
			}
			var cfg schema.DeployConfig
			if json.Unmarshal(s.Config, &cfg) == nil && (cfg.Spec == nil || cfg.Spec.Server == nil || len(cfg.Spec.Server.Command) == 0) {
				return fmt.Sprintf("serving.%s names no server (server.command), and the built-in model server is not built", cfg.Serving), true
			}
		case "monitor":
			return "monitoring is planned but not applied by this weir yet (the monitor is not built)", true
		}
		return "", false
	}
}

func newRunID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// baseEnv is the environment every local step starts from: only what a
// program needs to find its tools and speak the user's language.
func baseEnv() map[string]string {
	env := map[string]string{}
	for _, k := range []string{"PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	return env
}

// secretResolver resolves "env:NAME" from weir's environment and
// "file:PATH" relative to the project.
func secretResolver(dir string) func(string) (string, error) {
	return func(ref string) (string, error) {
		kind, name, _ := strings.Cut(ref, ":")
		switch kind {
		case "env":
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("secret %s: %s is not set in weir's environment", ref, name)
			}
			return v, nil
		case "file":
			p := name
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("secret %s: %v", ref, err)
			}
			return strings.TrimRight(string(b), "\n"), nil
		}
		return "", fmt.Errorf("secret %s: unknown kind %q (use env: or file:)", ref, kind)
	}
}
