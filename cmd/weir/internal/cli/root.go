// Package cli holds Weir's commands. Each command parses its flags, calls
// one library function and hands the result to a view; no command holds
// logic of its own beyond wiring.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/internal/diag"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "v0.1.0-dev"

// exitError carries an exit code through cobra; its message, if any, has
// been printed already.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs the CLI with os.Args and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// WEIR_CPUPROFILE=FILE writes a CPU profile of the command, for
	// `go tool pprof`.
	if path := os.Getenv("WEIR_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	return Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs the CLI with args and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	defer beginSession(ctx, stderr)()
	root := newRoot(stdout, stderr)
	root.SetArgs(terraformFlags(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return 1
}

// terraformFlags accepts Terraform's single-dash long flags (-out=FILE,
// -detailed-exitcode, -replace ADDR) by rewriting them to the double-dash
// form. Weir has no clusters of one-letter flags, so a single dash followed
// by two or more letters is always a long flag.
func terraformFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, _, _ := strings.Cut(a, "=")
		if len(name) > 2 && name[0] == '-' && name[1] != '-' && isFlagName(name[1:]) {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func isFlagName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "weir",
		Short: "Weir compiles declarative ML pipelines into plans and applies them",
		Long: `Weir validates a project's weir.cue, checks it against policies, compiles
it into a plan you can review, and applies it on local processes, Docker,
Kubernetes or batch services.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newInitCmd(), newFmtCmd(), newValidateCmd(), newPlanCmd(), newApplyCmd(), newGraphCmd(), newVersionCmd(),
		newRunsCmd(), newMetricsCmd(), newModelsCmd(), newLineageCmd(), newStateCmd(), newGCCmd(), newPolicyCmd(), newReviewCmd(),
		newPluginsCmd(), newPluginServeCmd(), newConvertCmd(), newCompileCmd(),
	)
	return root
}

// projectDir resolves the optional DIR argument.
func projectDir(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}

// weirDir is the project's .weir folder (state, artifacts, caches).
func weirDir(dir string) string { return filepath.Join(dir, ".weir") }

// fail prints diagnostics and returns the exit error for them.
func fail(w io.Writer, ds diag.Diagnostics) error {
	view.Diagnostics(w, ds)
	return exitError{1}
}

// warn prints the warnings among diagnostics.
func warn(w io.Writer, ds diag.Diagnostics) {
	var ws diag.Diagnostics
	for _, d := range ds {
		if d.Severity != diag.Error {
			ws = append(ws, d)
		}
	}
	if len(ws) > 0 {
		view.Diagnostics(w, ws)
	}
}
