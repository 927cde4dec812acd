package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/compiler"
)

func newValidateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check the spec: schema, references, cycles, code folders",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := compileOptions(projectDir(args))
			opts.StopAfter = "graph"
			res, ds := compiler.Compile(cmd.Context(), opts)
			if asJSON {
				if err := view.DiagnosticsJSON(cmd.OutOrStdout(), ds); err != nil {
					return err
				}
				if ds.HasErrors() {
					return exitError{1}
				}
				return nil
			}
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			warn(cmd.ErrOrStderr(), ds)
			fmt.Fprintf(cmd.OutOrStdout(), "The spec of project %s is valid: %d steps, %d resources.\n",
				res.Plan.Project, len(res.Plan.Steps), len(res.Plan.Changes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print diagnostics as JSON")
	addSpecInputFlags(cmd)
	return cmd
}

func newGraphCmd() *cobra.Command {
	var format string
	var targets []string
	cmd := &cobra.Command{
		Use:   "graph [DIR]",
		Short: "Print the step graph as Graphviz dot or Mermaid",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "dot" && format != "mermaid" {
				return fmt.Errorf("unknown --format %q: use dot or mermaid", format)
			}
			opts := compileOptions(projectDir(args))
			opts.StopAfter = "graph"
			opts.Targets = targets
			res, ds := compiler.Compile(cmd.Context(), opts)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			return view.Graph(cmd.OutOrStdout(), res.Plan, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "output `FORMAT`: dot or mermaid")
	cmd.Flags().StringSliceVar(&targets, "target", nil, "only `ADDR` and what it needs")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weir's version and the formats it speaks",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "weir %s (plan format %s)\n", Version, schemaPlanFormat())
		},
	}
}
