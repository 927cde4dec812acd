package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"weir.dev/weir/runtime/state"
)

func newStateCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect the state: list, show, unlock",
	}
	cmd.PersistentFlags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	list := &cobra.Command{
		Use:   "list",
		Short: "List every step the state holds, with its latest execution",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				latest, err := latestExecutions(ctx, p)
				if err != nil {
					return err
				}
				addrs := make([]string, 0, len(latest))
				for a := range latest {
					addrs = append(addrs, a)
				}
				sort.Strings(addrs)
				if asJSON {
					var out []*state.Execution
					for _, a := range addrs {
						out = append(out, latest[a])
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "ADDRESS\tSTATUS\tRUN\tKEY\tOUTPUTS")
				for _, a := range addrs {
					e := latest[a]
					var outs []string
					for _, o := range e.Outputs {
						outs = append(outs, o.Name+"="+shortDigest(o.Digest))
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a, e.Status, e.RunID, shortDigest(e.CacheKey), strings.Join(outs, " "))
				}
				return w.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ADDR",
		Short: "Show a step's latest execution: key, outputs, params, metrics, log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				latest, err := latestExecutions(ctx, p)
				if err != nil {
					return err
				}
				e := latest[args[0]]
				if e == nil {
					var addrs []string
					for a := range latest {
						addrs = append(addrs, a)
					}
					return fmt.Errorf("the state holds no step %s%s", args[0], didYouMeanAddr(args[0], addrs))
				}
				ms, _ := p.db.Metrics(ctx, e.ID)
				params, _ := p.db.Params(ctx, e.ID)
				if asJSON {
					return printJSON(cmd.OutOrStdout(), execView{Execution: e, Metrics: lastMetrics(ms), Params: params})
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "%s\n  status   %s (attempt %d)\n  run      %s\n  kind     %s on %s\n  key      %s\n  started  %s, took %s\n",
					e.Address, e.Status, e.Attempt, e.RunID, e.Kind, orWeir(e.Backend), e.CacheKey, ago(e.Started), dur(e.Started, e.Ended))
				if e.Error != "" {
					fmt.Fprintf(out, "  error    %s\n", e.Error)
				}
				for _, o := range e.Outputs {
					fmt.Fprintf(out, "  output   %s %s (%d bytes)\n", o.Name, o.Digest, o.Size)
				}
				if len(params) > 0 {
					fmt.Fprintf(out, "  params   %v\n", params)
				}
				if m := lastMetrics(ms); len(m) > 0 {
					fmt.Fprintf(out, "  metrics  %s\n", metricText(m))
				}
				if e.LogPath != "" {
					fmt.Fprintf(out, "  log      %s\n", e.LogPath)
				}
				return nil
			})
		},
	}
	unlock := &cobra.Command{
		Use:   "unlock",
		Short: "Release the state lock left by a weir that is gone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				info, err := p.db.ForceUnlock(ctx)
				if errors.Is(err, state.ErrNotLocked) {
					fmt.Fprintln(cmd.OutOrStdout(), "The state is not locked.")
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Released the lock held by %s@%s (pid %d, %s) since %s.\n",
					info.User, info.Host, info.PID, info.Operation, ago(info.Created))
				return nil
			})
		},
	}
	cmd.AddCommand(list, show, unlock)
	return cmd
}

func orWeir(b string) string {
	if b == "" {
		return "weir"
	}
	return b
}

func didYouMeanAddr(a string, cands []string) string {
	sort.Strings(cands)
	for _, c := range cands {
		if strings.HasPrefix(c, a) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
	}
	return ""
}

// latestExecutions returns each address's latest finished execution.
func latestExecutions(ctx context.Context, p *project) (map[string]*state.Execution, error) {
	runs, err := p.db.Runs(ctx, 0)
	if err != nil {
		return nil, err
	}
	latest := map[string]*state.Execution{}
	for _, r := range runs { // newest first
		ex, err := p.db.Executions(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		for i := len(ex) - 1; i >= 0; i-- {
			e := ex[i]
			if _, ok := latest[e.Address]; !ok && e.Status != state.StatusRunning {
				latest[e.Address] = e
			}
		}
	}
	return latest, nil
}

func newGCCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove artifacts the state no longer refers to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withProject(cmd, dir, func(ctx context.Context, p *project) error {
				unlock, err := p.lock(ctx, "weir gc", func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) })
				if err != nil {
					return err
				}
				defer unlock()
				keep, err := p.db.ReferencedDigests(ctx)
				if err != nil {
					return err
				}
				n, freed, err := p.store.GC(func(d string) bool { return keep[d] })
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Removed %d unreferenced artifact(s), %d bytes; kept %d.\n", n, freed, len(keep))
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "C", ".", "project `DIR`")
	return cmd
}
