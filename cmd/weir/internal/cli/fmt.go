package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler/load"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

func schemaPlanFormat() string { return schema.PlanFormatVersion }

func newFmtCmd() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt [DIR|FILE...]",
		Short: "Format spec files the canonical way (CUE, HCL, Jsonnet)",
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := specFileArgs(args)
			if err != nil {
				return err
			}
			var ds diag.Diagnostics
			var unformatted []string
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				out, d := load.Format(f, src)
				if d.HasErrors() {
					ds = append(ds, d...)
					continue
				}
				if bytes.Equal(src, out) {
					continue
				}
				unformatted = append(unformatted, f)
				if !check {
					if err := os.WriteFile(f, out, 0o644); err != nil {
						return err
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			if ds.HasErrors() {
				return fail(cmd.ErrOrStderr(), ds)
			}
			if check && len(unformatted) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d file(s) need formatting: run weir fmt\n", len(unformatted))
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list files that need formatting and exit 1, changing nothing")
	return cmd
}

// specFileArgs lists the files weir fmt formats: those named, and the
// spec files of the folders named (the current one by default).
func specFileArgs(args []string) ([]string, error) {
	if len(args) == 0 {
		args = []string{"."}
	}
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && load.IsSpecFile(e.Name()) {
				files = append(files, filepath.Join(a, e.Name()))
			}
		}
	}
	sort.Strings(files)
	return files, nil
}
