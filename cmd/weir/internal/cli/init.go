package cli

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

//go:embed scaffold
var scaffold embed.FS

var projectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

func newInitCmd() *cobra.Command {
	var name, owner string
	var upgrade bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a project that validates and plans: weir.cue, sample data, a training step",
		Long: `Init creates a project that validates and plans: weir.cue, sample data and
a training step. It never overwrites a spec.

With -upgrade, in a project that has a spec, it pins the backend plugins the
spec uses in weir.lock instead: each plugin's checksum, protocol version and
version, accepting executables that changed since they were pinned.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := projectDir(args)
			if upgrade {
				if _, err := os.Stat(filepath.Join(dir, "weir.cue")); err == nil {
					return pinPlugins(cmd, dir)
				}
			}
			if name == "" {
				abs, _ := filepath.Abs(dir)
				name = strings.ToLower(filepath.Base(abs))
				name = regexp.MustCompile(`[^a-z0-9_-]+`).ReplaceAllString(name, "-")
				if !projectName.MatchString(name) {
					name = "project"
				}
			}
			if !projectName.MatchString(name) {
				return fmt.Errorf("project name %q: use letters, digits, _ and -, starting with a letter", name)
			}
			if owner == "" {
				owner = os.Getenv("USER") + "@localhost"
			}
			if _, err := os.Stat(filepath.Join(dir, "weir.cue")); err == nil {
				return fmt.Errorf("%s already exists: weir init does not overwrite a spec", filepath.Join(dir, "weir.cue"))
			}
			err := fs.WalkDir(scaffold, "scaffold", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel := strings.TrimPrefix(p, "scaffold/")
				if rel == "gitignore" {
					rel = ".gitignore"
				}
				dst := filepath.Join(dir, rel)
				if _, err := os.Stat(dst); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "kept    %s (exists)\n", dst)
					return nil
				}
				b, err := scaffold.ReadFile(p)
				if err != nil {
					return err
				}
				b = bytes.ReplaceAll(b, []byte("PROJECT"), []byte(name))
				b = bytes.ReplaceAll(b, []byte("OWNER"), []byte(owner))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(dst, b, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", dst)
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nProject %s is ready. Next: weir validate %s && weir plan %s\n", name, dir, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "project", "", "project `NAME` (default: the folder's name)")
	cmd.Flags().StringVar(&owner, "owner", "", "owner `EMAIL` or team:NAME (default: $USER@localhost)")
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "pin the spec's backend plugins in weir.lock, accepting changed executables")
	return cmd
}
