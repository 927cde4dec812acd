package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler"
	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// withProject opens the project named by --dir (default .) for a read
// command.
func withProject(cmd *cobra.Command, dir string, fn func(ctx context.Context, p *project) error) error {
	if _, err := os.Stat(weirDir(dir)); err != nil {
		return fmt.Errorf("%s has no state yet: run weir apply first", dir)
	}
	p, err := openProject(cmd.Context(), dir)
	if err != nil {
		return err
	}
	defer p.Close()
	return fn(cmd.Context(), p)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func dur(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return "-"
	}
	return b.Sub(a).Round(time.Millisecond).String()
}

// --- weir runs -------------------------------------------------------------

func newRunsCmd() *cobra.Command {
	var dir string
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "runs [list | show RUN]",
		Short: "List runs, or show one run's steps with their status, metrics and outputs",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] == "list" {
				return listRuns(cmd, dir, limit, asJSON)
			}
			if args[0] == "show" && len(args) == 2 {
				return showRun(cmd, dir, args[1], asJSON)
			}
			return fmt.Errorf("usage: weir runs [list | show RUN]")
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most `N` runs (0: all)")
	return cmd
}

func listRuns(cmd *cobra.Command, dir string, limit int, asJSON bool) error {
	return withProject(cmd, dir, func(ctx context.Context, p *project) error {
		runs, err := p.db.Runs(ctx, limit)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), runs)
		}
		w := table(cmd.OutOrStdout())
		fmt.Fprintln(w, "RUN\tSTATUS\tSTARTED\tDURATION\tUSER\tSTEPS")
		for _, r := range runs {
			ex, _ := p.db.Executions(ctx, r.ID)
			counts := map[state.Status]int{}
			for _, e := range ex {
				counts[e.Status]++
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d ran, %d cached, %d failed\n", r.ID, r.Status, ago(r.Started), dur(r.Started, r.Ended),
				r.User, counts[state.StatusSucceeded], counts[state.StatusCached], counts[state.StatusFailed])
		}
		return w.Flush()
	})
}

type execView struct {
	*state.Execution
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Params  map[string]any     `json:"params,omitempty"`
}

func runExecutions(ctx context.Context, p *project, runID string) ([]execView, error) {
	ex, err := p.db.Executions(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]execView, len(ex))
	for i, e := range ex {
		ms, _ := p.db.Metrics(ctx, e.ID)
		params, _ := p.db.Params(ctx, e.ID)
		out[i] = execView{Execution: e, Metrics: lastMetrics(ms), Params: params}
	}
	return out, nil
}

func lastMetrics(ms []state.Metric) map[string]float64 {
	out := map[string]float64{}
	last := map[string]int64{}
	for _, m := range ms {
		if s, ok := last[m.Name]; !ok || m.Step >= s {
			out[m.Name], last[m.Name] = m.Value, m.Step
		}
	}
	return out
}

func showRun(cmd *cobra.Command, dir, id string, asJSON bool) error {
	return withProject(cmd, dir, func(ctx context.Context, p *project) error {
		run, err := p.db.Run(ctx, id)
		if err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		ex, err := runExecutions(ctx, p, id)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), map[string]any{"run": run, "executions": ex})
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Run %s: %s, started %s by %s, took %s\n\n", run.ID, run.Status, ago(run.Started), run.User, dur(run.Started, run.Ended))
		w := table(out)
		fmt.Fprintln(w, "STEP\tSTATUS\tTRY\tDURATION\tMETRICS")
		for _, e := range ex {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Address, e.Status, e.Attempt, dur(e.Started, e.Ended), metricText(e.Metrics))
		}
		return w.Flush()
	})
}

func metricText(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatFloat(m[k], 'g', 4, 64))
	}
	return strings.Join(parts, " ")
}

// --- weir metrics diff ----------------------------------------------------

func newMetricsCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "metrics diff RUN_A RUN_B",
		Short: "Compare the metrics of two runs, step by step, with deltas",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "diff" {
				return fmt.Errorf("usage: weir metrics diff RUN_A RUN_B")
			}
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				a, err := runMetrics(ctx, p, args[1])
				if err != nil {
					return err
				}
				b, err := runMetrics(ctx, p, args[2])
				if err != nil {
					return err
				}
				rows := diffMetrics(a, b)
				if asJSON {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintf(w, "STEP\tMETRIC\t%s\t%s\tDELTA\n", args[1], args[2])
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Step, r.Metric, num(r.A), num(r.B), delta(r.A, r.B))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type metricRow struct {
	Step   string   `json:"step"`
	Metric string   `json:"metric"`
	A      *float64 `json:"a"`
	B      *float64 `json:"b"`
}

func runMetrics(ctx context.Context, p *project, runID string) (map[string]map[string]float64, error) {
	if _, err := p.db.Run(ctx, runID); err != nil {
		return nil, fmt.Errorf("run %s: %w", runID, err)
	}
	ex, err := runExecutions(ctx, p, runID)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]float64{}
	for _, e := range ex {
		if len(e.Metrics) > 0 && (e.Status == state.StatusSucceeded || e.Status == state.StatusCached) {
			out[e.Address] = e.Metrics
		}
	}
	return out, nil
}

func diffMetrics(a, b map[string]map[string]float64) []metricRow {
	keys := map[[2]string]bool{}
	for s, m := range a {
		for k := range m {
			keys[[2]string{s, k}] = true
		}
	}
	for s, m := range b {
		for k := range m {
			keys[[2]string{s, k}] = true
		}
	}
	var rows []metricRow
	for k := range keys {
		r := metricRow{Step: k[0], Metric: k[1]}
		if v, ok := a[k[0]][k[1]]; ok {
			r.A = &v
		}
		if v, ok := b[k[0]][k[1]]; ok {
			r.B = &v
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Step != rows[j].Step {
			return rows[i].Step < rows[j].Step
		}
		return rows[i].Metric < rows[j].Metric
	})
	return rows
}

func num(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'g', 6, 64)
}

func delta(a, b *float64) string {
	if a == nil || b == nil {
		return ""
	}
	d := *b - *a
	s := strconv.FormatFloat(d, 'g', 4, 64)
	if d > 0 {
		s = "+" + s
	}
	if *a != 0 && !math.IsInf(d / *a, 0) {
		s += fmt.Sprintf(" (%+.1f%%)", 100*d/math.Abs(*a))
	}
	return s
}

// --- weir models ----------------------------------------------------------

func newModelsCmd() *cobra.Command {
	var dir string
	var asJSON bool
	var comment, to, alias string
	cmd := &cobra.Command{
		Use:   "models",
		Short: "The model registry: list, show, approve, promote, rollback",
	}
	cmd.PersistentFlags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	list := &cobra.Command{
		Use:   "list",
		Short: "List models with their versions and aliases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				names, err := modelNames(ctx, p)
				if err != nil {
					return err
				}
				type row struct {
					Model    string         `json:"model"`
					Versions int            `json:"versions"`
					Latest   int            `json:"latest"`
					Status   string         `json:"status"`
					Aliases  map[string]int `json:"aliases"`
				}
				var rows []row
				for _, n := range names {
					vs, _ := registry.New(p.db).Versions(ctx, n)
					r := row{Model: n, Versions: len(vs), Aliases: map[string]int{}}
					if len(vs) > 0 {
						last := vs[len(vs)-1]
						r.Latest, r.Status = last.Version, string(last.Status)
					}
					p.db.View(ctx, func(tx *state.Tx) error {
						r.Aliases, _ = tx.Aliases(n)
						return nil
					})
					rows = append(rows, r)
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "MODEL\tVERSIONS\tLATEST\tSTATUS\tALIASES")
				for _, r := range rows {
					var al []string
					for a, v := range r.Aliases {
						al = append(al, fmt.Sprintf("%s=v%d", a, v))
					}
					sort.Strings(al)
					fmt.Fprintf(w, "%s\t%d\tv%d\t%s\t%s\n", r.Model, r.Versions, r.Latest, r.Status, strings.Join(al, " "))
				}
				return w.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show MODEL[@VERSION|@ALIAS]",
		Short: "Show a model's versions, or one version with its gates, metrics and lineage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				return showModel(cmd, ctx, p, args[0], asJSON)
			})
		},
	}
	approve := &cobra.Command{
		Use:   "approve MODEL VERSION",
		Short: "Approve a model version (you must be among the spec's approvers)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.Atoi(strings.TrimPrefix(args[1], "v"))
			if err != nil {
				return fmt.Errorf("version %q is not a number", args[1])
			}
			m, err := specModel(cmd, dir, args[0])
			if err != nil {
				return err
			}
			var approvers []string
			if m.Approval != nil {
				approvers = m.Approval.Approvers
			}
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				user := currentUser()
				mv, err := registry.New(p.db).Approve(ctx, args[0], v, user, approvers, comment)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s v%d approved by %s (status %s)\n", args[0], mv.Version, user, mv.Status)
				return nil
			})
		},
	}
	approve.Flags().StringVarP(&comment, "message", "m", "", "a comment recorded with the approval")
	promote := &cobra.Command{
		Use:   "promote MODEL VERSION --to ALIAS",
		Short: "Point an alias at a version (refused without a required approval)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to ALIAS is required")
			}
			v, err := strconv.Atoi(strings.TrimPrefix(args[1], "v"))
			if err != nil {
				return fmt.Errorf("version %q is not a number", args[1])
			}
			m, err := specModel(cmd, dir, args[0])
			if err != nil {
				return err
			}
			required := m.Approval != nil && m.Approval.Required
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				ch, err := registry.New(p.db).Promote(ctx, args[0], v, to, currentUser(), required)
				if err != nil {
					return err
				}
				if ch == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "alias %s of %s already points at v%d\n", to, args[0], v)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "alias %s of %s: %s -> v%d\n", to, args[0], vname(ch.Previous), ch.Version)
				return nil
			})
		},
	}
	promote.Flags().StringVar(&to, "to", "", "the `ALIAS` to point at the version")
	rollback := &cobra.Command{
		Use:   "rollback MODEL --alias ALIAS",
		Short: "Move an alias back to the version it pointed at before",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if alias == "" {
				return fmt.Errorf("--alias ALIAS is required")
			}
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				ch, err := registry.New(p.db).Rollback(ctx, args[0], alias, currentUser())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "alias %s of %s rolled back: %s -> v%d\n", alias, args[0], vname(ch.Previous), ch.Version)
				return nil
			})
		},
	}
	rollback.Flags().StringVar(&alias, "alias", "", "the `ALIAS` to roll back")
	cmd.AddCommand(list, show, approve, promote, rollback)
	return cmd
}

func vname(v int) string {
	if v == 0 {
		return "(none)"
	}
	return "v" + strconv.Itoa(v)
}

// specModel reads a model's entry from the spec (approvers, approval).
func specModel(cmd *cobra.Command, dir, name string) (*schema.Model, error) {
	opts := compileOptions(dir)
	opts.StopAfter = "load"
	res, ds := compiler.Compile(cmd.Context(), opts)
	if ds.HasErrors() {
		return nil, fail(cmd.ErrOrStderr(), ds)
	}
	m := res.Load.Project.Models[name]
	if m == nil {
		var names []string
		for n := range res.Load.Project.Models {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("no model %q in the spec (models: %s)", name, strings.Join(names, ", "))
	}
	return m, nil
}

func modelNames(ctx context.Context, p *project) ([]string, error) {
	var names []string
	err := p.db.View(ctx, func(tx *state.Tx) error {
		var err error
		names, err = tx.Models()
		return err
	})
	return names, err
}

func showModel(cmd *cobra.Command, ctx context.Context, p *project, ref string, asJSON bool) error {
	reg := registry.New(p.db)
	name, sel, hasSel := strings.Cut(ref, "@")
	out := cmd.OutOrStdout()
	if !hasSel {
		vs, err := reg.Versions(ctx, name)
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		if len(vs) == 0 {
			return fmt.Errorf("model %s has no versions yet: run weir apply", name)
		}
		if asJSON {
			return printJSON(out, vs)
		}
		w := table(out)
		fmt.Fprintln(w, "VERSION\tSTATUS\tCREATED\tRUN\tMETRICS")
		for _, v := range vs {
			fmt.Fprintf(w, "v%d\t%s\t%s\t%s\t%s\n", v.Version, v.Status, ago(v.Created), v.RunID, metricText(v.Metrics))
		}
		w.Flush()
		fmt.Fprintf(out, "\nweir models show %s@%d for a version's gates and lineage\n", name, vs[len(vs)-1].Version)
		return nil
	}
	mv, err := modelVersion(ctx, reg, name, sel)
	if err != nil {
		return fmt.Errorf("model %s: %w", ref, err)
	}
	approvals, _ := reg.Approvals(ctx, name, mv.Version)
	if asJSON {
		return printJSON(out, map[string]any{"version": mv, "approvals": approvals})
	}
	fmt.Fprintf(out, "Model %s v%d: %s\n", name, mv.Version, mv.Status)
	fmt.Fprintf(out, "  created   %s by run %s\n", ago(mv.Created), mv.RunID)
	fmt.Fprintf(out, "  artifact  %s\n", mv.ArtifactDigest)
	if len(mv.Gates) > 0 {
		fmt.Fprintln(out, "  gates:")
		for _, g := range mv.Gates {
			mark := "passed"
			if !g.Passed {
				mark = "FAILED: " + g.Message
			}
			fmt.Fprintf(out, "    %-10s %-8s %-10s %s\n", g.Metric, g.Rule, strconv.FormatFloat(g.Value, 'g', 4, 64), mark)
		}
	}
	if len(mv.Metrics) > 0 {
		fmt.Fprintf(out, "  metrics   %s\n", metricText(mv.Metrics))
	}
	for _, a := range approvals {
		fmt.Fprintf(out, "  approved  by %s at %s %s\n", a.Approver, ago(a.Time), a.Comment)
	}
	printLineage(out, mv)
	return nil
}

// modelVersion finds a version by number ("3", "v3") or alias.
func modelVersion(ctx context.Context, reg *registry.Registry, name, sel string) (*state.ModelVersion, error) {
	if v, err := strconv.Atoi(strings.TrimPrefix(sel, "v")); err == nil {
		return reg.Version(ctx, name, v)
	}
	return reg.Resolve(ctx, name, sel)
}

func printLineage(out io.Writer, mv *state.ModelVersion) {
	l := mv.Lineage
	fmt.Fprintln(out, "  lineage:")
	for _, d := range l.Datasets {
		fmt.Fprintf(out, "    data      %s %s\n", d.Name, d.Digest)
	}
	if l.CodeDigest != "" {
		fmt.Fprintf(out, "    code      %s\n", l.CodeDigest)
	}
	if l.Image != "" {
		fmt.Fprintf(out, "    image     %s\n", l.Image)
	}
	if len(l.Params) > 0 {
		b, _ := json.Marshal(l.Params)
		fmt.Fprintf(out, "    params    %s\n", b)
	}
	fmt.Fprintf(out, "    spec      %s\n", l.SpecHash)
	if l.GitCommit != "" {
		fmt.Fprintf(out, "    commit    %s\n", l.GitCommit)
	}
}

// --- weir lineage ----------------------------------------------------------

func newLineageCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "lineage ADDR | MODEL@VERSION",
		Short: "Print the chain from data to a step's outputs or a model version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			if name, sel, ok := strings.Cut(ref, "@"); ok {
				return withProject(cmd, dir, func(ctx context.Context, p *project) error {
					mv, err := modelVersion(ctx, registry.New(p.db), name, sel)
					if err != nil {
						return fmt.Errorf("%s: %w", ref, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s v%d (%s), run %s\n", name, mv.Version, mv.Status, mv.RunID)
					printLineage(cmd.OutOrStdout(), mv)
					return nil
				})
			}
			return stepLineage(cmd, dir, ref)
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	return cmd
}

// stepLineage walks a step's needs up to the data, with the digests of the
// results the state holds for the current spec.
func stepLineage(cmd *cobra.Command, dir, addr string) error {
	return withProject(cmd, dir, func(ctx context.Context, p *project) error {
		ps, err := newPlanState(ctx, p)
		if err != nil {
			return err
		}
		opts := compileOptions(dir)
		opts.State = ps
		opts.Targets = []string{addr}
		res, ds := compiler.Compile(ctx, opts)
		if ds.HasErrors() {
			return fail(cmd.ErrOrStderr(), ds)
		}
		byAddr := map[string]*schema.Step{}
		for _, s := range res.Plan.Steps {
			byAddr[s.Address] = s
		}
		out := cmd.OutOrStdout()
		seen := map[string]bool{}
		var walk func(a string, depth int)
		walk = func(a string, depth int) {
			s := byAddr[a]
			if s == nil {
				return
			}
			line := strings.Repeat("  ", depth) + a
			if e, ok, _ := p.db.LookupCache(ctx, s.CacheKey); ok {
				var outs []string
				for _, o := range e.Outputs {
					outs = append(outs, o.Name+"="+shortDigest(o.Digest))
				}
				line += fmt.Sprintf("  [run %s] %s", e.RunID, strings.Join(outs, " "))
			} else {
				line += "  (no result for the current spec)"
			}
			if s.Run != nil && s.Run.CodeDigest != "" {
				line += "  code=" + shortDigest(s.Run.CodeDigest)
			}
			fmt.Fprintln(out, line)
			if seen[a] {
				return
			}
			seen[a] = true
			for _, n := range s.Needs {
				walk(n, depth+1)
			}
		}
		roots := 0
		for _, s := range res.Plan.Steps {
			if s.Address == addr || s.Element == addr {
				walk(s.Address, 0)
				roots++
			}
		}
		if roots == 0 {
			return errors.New("no step " + addr)
		}
		return nil
	})
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
