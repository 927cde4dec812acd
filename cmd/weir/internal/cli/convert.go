package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler/load"
)

func newConvertCmd() *cobra.Command {
	var to, out string
	cmd := &cobra.Command{
		Use:   "convert [DIR] --to cue|hcl|jsonnet",
		Short: "Translate the spec to CUE, HCL or Jsonnet",
		Long: `Convert writes the spec in DIR (default .) in another language, to stdout or
to -o FILE. The spec is evaluated first: variables, locals, functions,
imports and comprehensions are expanded, and the result gives the same IR
(and plan) as the original. Comments on the lines above a field, and the
one at the top of the file, are kept. A project folder holds one language:
replace the old spec with the new one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("give the target language: --to %s", strings.Join(load.Languages, "|"))
			}
			c, ds := load.Convert(cmd.Context(), projectDir(args), to, specInputs())
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(c.Source)
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			return os.WriteFile(out, c.Source, 0o644)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the target `LANGUAGE`: cue, hcl or jsonnet")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to `FILE` instead of stdout")
	addSpecInputFlags(cmd)
	return cmd
}
