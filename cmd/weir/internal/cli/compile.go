package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/plugins/kubernetes"
	"weir.dev/weir/schema"
)

// compileTargets are the formats weir compile writes a project in: each
// turns the compiled plan (and the project, for its defaults) into files.
var compileTargets = map[string]func(p *schema.Plan, proj *schema.Project) ([]kubernetes.File, []kubernetes.Skipped, diag.Diagnostics){
	"kubernetes": func(p *schema.Plan, proj *schema.Project) ([]kubernetes.File, []kubernetes.Skipped, diag.Diagnostics) {
		m, ds := kubernetes.BuildManifests(p, proj)
		if ds.HasErrors() {
			return nil, nil, ds
		}
		files, err := kubernetes.Files(m)
		if err != nil {
			return nil, nil, append(ds, diag.Errorf("kubernetes", "", nil, "%v", err))
		}
		return files, m.Skipped, ds
	},
}

func targetNames() string {
	names := make([]string, 0, len(compileTargets))
	for n := range compileTargets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func newCompileCmd() *cobra.Command {
	var target, out string
	cmd := &cobra.Command{
		Use:   "compile --target kubernetes -o DIR [DIR]",
		Short: "Write the project as manifests for another tool (GitOps)",
		Long: `Compile writes the project in DIR (default .) as the files of a target, for
teams that deploy through GitOps rather than weir apply:
  kubernetes   one YAML file per object (KIND-NAME.yaml) and a
               kustomization.yaml: a Job per step on a kubernetes backend,
               and per serving element its Deployment, Service,
               PodDisruptionBudget and HorizontalPodAutoscaler.
The output is deterministic: the same spec gives the same bytes. Files an
earlier compile wrote into the folder and no longer compiled are removed;
other files are left alone. -o - prints every manifest to stdout instead,
as one YAML stream.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			build, ok := compileTargets[target]
			if !ok {
				if target == "" {
					return fmt.Errorf("--target is required: the targets are %s", targetNames())
				}
				return fmt.Errorf("unknown --target %q: the targets are %s", target, targetNames())
			}
			if out == "" {
				return fmt.Errorf("-o DIR is required: the folder to write the manifests into (- for stdout)")
			}
			opts := compileOptions(projectDir(args))
			opts.StopAfter = "graph"
			res, ds := compiler.Compile(cmd.Context(), opts)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			warn(cmd.ErrOrStderr(), ds)
			files, skipped, ds := build(res.Plan, res.Load.Project)
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			warn(cmd.ErrOrStderr(), ds)
			w := cmd.OutOrStdout()
			if out == "-" {
				return printStream(w, files)
			}
			removed, err := kubernetes.WriteFiles(out, files)
			if err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			fmt.Fprintf(w, "Wrote %d files to %s (target %s).\n", len(files), out, target)
			for _, r := range removed {
				fmt.Fprintf(w, "  removed %s: no longer compiled\n", r)
			}
			if len(skipped) > 0 {
				fmt.Fprintf(w, "Not in the manifests (%d steps):\n", len(skipped))
				for _, s := range skipped {
					fmt.Fprintf(w, "  %s: %s\n", s.Address, s.Reason)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the `TARGET` to compile for: "+targetNames())
	cmd.Flags().StringVarP(&out, "out", "o", "", "the `DIR` to write into (- for stdout)")
	addSpecInputFlags(cmd)
	return cmd
}

// printStream writes the manifests as one YAML stream, the kustomization
// left out.
func printStream(w io.Writer, files []kubernetes.File) error {
	first := true
	for _, f := range files {
		if f.Name == kubernetes.KustomizationFile {
			continue
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
	}
	return nil
}
