package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"weir.dev/weir/cmd/weir/internal/view"
	"weir.dev/weir/compiler"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/compiler/policy"
	"weir.dev/weir/schema"
)

func newReviewCmd() *cobra.Command {
	var base, head, format string
	cmd := &cobra.Command{
		Use:   "review --base REV [--head REV] [DIR]",
		Short: "Review a change: what it adds, re-trains and costs, and its policy findings",
		Long: `Review compiles the spec at the base git revision (read through git, the
work tree is not touched) and at the head (default: the work tree), then
reports the elements added, removed and changed, the steps that will re-run
and why, the estimated CPU-hours, GPU-hours and cost before and after, and the
policy findings split into new, fixed and unchanged.

Formats: markdown (a pull-request comment), json, sarif, github. Exit 1 when
the change brings a new policy denial.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if base == "" {
				return errors.New("--base REV is required (e.g. --base origin/main)")
			}
			rev, err := review(cmd.Context(), projectDir(args), base, head)
			if err != nil {
				return err
			}
			if err := view.Review(cmd.OutOrStdout(), format, rev); err != nil {
				return err
			}
			if rev.NewDenials() > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "", "the base git `REV` (branch, tag or commit)")
	cmd.Flags().StringVar(&head, "head", "", "the head git `REV` (default: the work tree)")
	cmd.Flags().StringVarP(&format, "format", "f", "markdown", "output `FORMAT`: markdown, json, sarif, github")
	return cmd
}

// review compiles base and head and compares them.
func review(ctx context.Context, dir, base, head string) (*view.ReviewReport, error) {
	baseDir, cleanup, err := exportRevision(ctx, dir, base)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	headDir := dir
	if head != "" {
		hd, cleanupHead, err := exportRevision(ctx, dir, head)
		if err != nil {
			return nil, err
		}
		defer cleanupHead()
		headDir = hd
	}
	var st compiler.State = compiler.EmptyState{}
	if isDir(weirDir(dir)) {
		proj, err := openProject(ctx, dir)
		if err != nil {
			return nil, err
		}
		defer proj.Close()
		if ps, err := newPlanState(ctx, proj); err == nil {
			st = ps
		}
	}
	compileAt := func(d, name string, cache bool) (*compiler.Result, error) {
		opts := compileOptions(d)
		if !cache {
			opts.CacheDir = "" // a throwaway export: nothing to reuse later
		}
		opts.State = st
		opts.Lower = nil
		opts.Policy = policyPass(d, policy.Lock{}, nil)
		res, ds := compiler.Compile(ctx, opts)
		if ds.HasErrors() {
			var b bytes.Buffer
			view.Diagnostics(&b, ds)
			return nil, fmt.Errorf("the spec at %s does not compile:\n%s", name, strings.TrimRight(b.String(), "\n"))
		}
		return res, nil
	}
	headName := head
	if headName == "" {
		headName = "the work tree"
	}
	// One after the other: the CUE context and the state reader are not
	// shared safely between two compilations.
	b, err := compileAt(baseDir, base, false)
	if err != nil {
		return nil, err
	}
	h, err := compileAt(headDir, headName, head == "")
	if err != nil {
		return nil, err
	}
	return compare(base, headName, b, h, st), nil
}

// exportRevision writes the project folder as it is at rev into a temporary
// folder, through git (git archive): the work tree is not touched.
func exportRevision(ctx context.Context, dir, rev string) (string, func(), error) {
	gitIn := func(dir string, args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	git := func(args ...string) ([]byte, error) { return gitIn(dir, args...) }
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return "", nil, fmt.Errorf("%s is not in a git repository: weir review compares git revisions", dir)
	}
	if _, err := git("rev-parse", "--verify", "--quiet", rev+"^{commit}"); err != nil {
		return "", nil, fmt.Errorf("revision %q does not exist in the git repository at %s", rev, dir)
	}
	prefix, err := git("rev-parse", "--show-prefix")
	if err != nil {
		return "", nil, err
	}
	p := strings.TrimSpace(string(prefix))
	treeish := rev
	if p != "" {
		treeish = rev + ":" + strings.TrimSuffix(p, "/")
	}
	// From the top: in a subfolder, git archive would also restrict the
	// tree to that subfolder's path inside it.
	data, err := gitIn(strings.TrimSpace(string(top)), "archive", "--format=tar", treeish)
	if err != nil {
		return "", nil, fmt.Errorf("revision %q has no folder %s: %v", rev, p, err)
	}
	tmp, err := os.MkdirTemp("", "weir-review-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if err := untar(bytes.NewReader(data), tmp); err != nil {
		cleanup()
		return "", nil, err
	}
	if !load.HasSpec(tmp) {
		cleanup()
		where := p
		if where == "" {
			where = "the repository root"
		}
		return "", nil, fmt.Errorf("revision %q has no spec (no .cue or .hcl file, nor weir.jsonnet, in %s)", rev, where)
	}
	return tmp, cleanup, nil
}

func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == ".." || strings.HasPrefix(name, "../") || filepath.IsAbs(name) {
			continue
		}
		p := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Symlink(h.Linkname, p)
		}
	}
}

// compare builds the review of base -> head.
func compare(baseName, headName string, b, h *compiler.Result, st compiler.State) *view.ReviewReport {
	r := &view.ReviewReport{Base: baseName, Head: headName, Project: h.Plan.Project}
	// Elements added, removed, changed.
	be, he := elements(b.Load.Project), elements(h.Load.Project)
	for _, k := range sortedKeys(he) {
		if bv, ok := be[k]; !ok {
			r.Added = append(r.Added, k)
		} else if bv != he[k] {
			r.Changed = append(r.Changed, k)
		}
	}
	for _, k := range sortedKeys(be) {
		if _, ok := he[k]; !ok {
			r.Removed = append(r.Removed, k)
		}
	}
	// Steps that re-run because of the change.
	baseSteps := map[string]*schema.Step{}
	for _, s := range b.Plan.Steps {
		baseSteps[s.Address] = s
	}
	for _, s := range h.Plan.Steps {
		bs := baseSteps[s.Address]
		switch {
		case bs == nil:
			r.Reruns = append(r.Reruns, view.Rerun{Address: s.Address, Reason: "new step"})
		case bs.CacheKey != s.CacheKey && s.Action != schema.ActionCached:
			r.Reruns = append(r.Reruns, view.Rerun{Address: s.Address, Reason: compiler.ExplainChange(s, bs.KeyParts)})
		}
	}
	headSteps := map[string]bool{}
	for _, s := range h.Plan.Steps {
		headSteps[s.Address] = true
	}
	for _, s := range b.Plan.Steps {
		if !headSteps[s.Address] {
			r.RemovedSteps = append(r.RemovedSteps, s.Address)
		}
	}
	all := func(*schema.Step) bool { return true }
	r.EstimateBase = compiler.Estimate(b.Plan, st, all)
	r.EstimateHead = compiler.Estimate(h.Plan, st, all)
	rerun := map[string]bool{}
	for _, x := range r.Reruns {
		rerun[x.Address] = true
	}
	r.EstimateChange = compiler.Estimate(h.Plan, st, func(s *schema.Step) bool { return rerun[s.Address] })
	// Findings: new, fixed, unchanged.
	key := func(f schema.Finding) string { return f.Rule + "\x00" + f.Address + "\x00" + f.Message }
	bf := map[string]bool{}
	for _, f := range b.Plan.Findings {
		bf[key(f)] = true
	}
	hf := map[string]bool{}
	for _, f := range h.Plan.Findings {
		hf[key(f)] = true
		if bf[key(f)] {
			r.Unchanged = append(r.Unchanged, f)
		} else {
			r.NewFindings = append(r.NewFindings, f)
		}
	}
	for _, f := range b.Plan.Findings {
		if !hf[key(f)] {
			r.Fixed = append(r.Fixed, f)
		}
	}
	return r
}

// elements maps each element's address to its canonical JSON.
func elements(p *schema.Project) map[string]string {
	b, _ := json.Marshal(p)
	var top map[string]json.RawMessage
	json.Unmarshal(b, &top)
	out := map[string]string{}
	for section, raw := range top {
		var entries map[string]json.RawMessage
		if json.Unmarshal(raw, &entries) == nil && isSectionName(section) {
			for name, v := range entries {
				out[section+"."+name] = string(v)
			}
			continue
		}
		out[section] = string(raw)
	}
	return out
}

func isSectionName(s string) bool {
	for _, x := range append(schema.Sections, "backends") {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
