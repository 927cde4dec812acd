package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// ReviewReport is the comparison of a change's base and head.
type ReviewReport struct {
	Project      string           `json:"project"`
	Base         string           `json:"base"`
	Head         string           `json:"head"`
	Added        []string         `json:"added,omitempty"`
	Removed      []string         `json:"removed,omitempty"`
	Changed      []string         `json:"changed,omitempty"`
	Reruns       []Rerun          `json:"reruns,omitempty"`
	RemovedSteps []string         `json:"removed_steps,omitempty"`
	EstimateBase *schema.Estimate `json:"estimate_base"`
	EstimateHead *schema.Estimate `json:"estimate_head"`
	// EstimateChange prices the steps the change makes run.
	EstimateChange *schema.Estimate `json:"estimate_change"`
	NewFindings    []schema.Finding `json:"new_findings,omitempty"`
	Fixed          []schema.Finding `json:"fixed_findings,omitempty"`
	Unchanged      []schema.Finding `json:"unchanged_findings,omitempty"`
}

// Rerun is a step the change makes run, and why.
type Rerun struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// NewDenials counts new, unwaived denials.
func (r *ReviewReport) NewDenials() int {
	n := 0
	for _, f := range r.NewFindings {
		if f.Severity == diag.Error && f.Waived == "" {
			n++
		}
	}
	return n
}

// Review renders a review in a format: markdown, json, sarif, github.
func Review(w io.Writer, format string, r *ReviewReport) error {
	switch format {
	case "markdown", "md":
		reviewMarkdown(w, r)
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "sarif":
		return RenderFindings(w, "sarif", r.NewFindings, nil, "weir.cue")
	case "github":
		if err := RenderFindings(w, "github", r.NewFindings, nil, "weir.cue"); err != nil {
			return err
		}
		for _, x := range r.Reruns {
			fmt.Fprintf(w, "::notice title=weir re-runs %s::%s\n", x.Address, x.Reason)
		}
		return nil
	}
	return fmt.Errorf("unknown review format %q: use markdown, json, sarif or github", format)
}

func money(e *schema.Estimate) string {
	if e == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", e.Cost)
}

func hours(f float64) string { return fmt.Sprintf("%.2f", f) }

func reviewMarkdown(w io.Writer, r *ReviewReport) {
	fmt.Fprintf(w, "## Weir review of `%s`: %s → %s\n\n", r.Project, r.Base, r.Head)
	nd := r.NewDenials()
	switch {
	case nd > 0:
		fmt.Fprintf(w, "❌ **%d new policy denial(s)**: this change cannot be applied as it is.\n\n", nd)
	case len(r.NewFindings) > 0:
		fmt.Fprintf(w, "⚠️ %d new policy finding(s), no denial.\n\n", len(r.NewFindings))
	default:
		fmt.Fprintln(w, "✅ No new policy findings.")
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| | elements | steps to re-run | CPU-hours | GPU-hours | cost |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| this change | +%d −%d ~%d | %d | %s | %s | %s |\n", len(r.Added), len(r.Removed), len(r.Changed), len(r.Reruns),
		hours(r.EstimateChange.CPUHours), hours(r.EstimateChange.GPUHours), money(r.EstimateChange))
	fmt.Fprintf(w, "| whole pipeline, before | | | %s | %s | %s |\n", hours(r.EstimateBase.CPUHours), hours(r.EstimateBase.GPUHours), money(r.EstimateBase))
	fmt.Fprintf(w, "| whole pipeline, after | | | %s | %s | %s |\n\n", hours(r.EstimateHead.CPUHours), hours(r.EstimateHead.GPUHours), money(r.EstimateHead))
	if u := r.EstimateHead.UnknownSteps; u > 0 {
		fmt.Fprintf(w, "_%d step(s) have no expectedDuration and no history: not priced._\n\n", u)
	}
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "**%s:** %s\n\n", title, "`"+strings.Join(items, "`, `")+"`")
	}
	list("Added", r.Added)
	list("Removed", r.Removed)
	list("Changed", r.Changed)
	if len(r.Reruns) > 0 {
		fmt.Fprintf(w, "<details><summary>%d step(s) will re-run</summary>\n\n| step | why |\n|---|---|\n", len(r.Reruns))
		for _, x := range r.Reruns {
			fmt.Fprintf(w, "| `%s` | %s |\n", x.Address, strings.ReplaceAll(x.Reason, "|", "\\|"))
		}
		fmt.Fprint(w, "\n</details>\n\n")
	}
	findings := func(title string, fs []schema.Finding, open bool) {
		if len(fs) == 0 {
			return
		}
		o := ""
		if open {
			o = " open"
		}
		fmt.Fprintf(w, "<details%s><summary>%s (%d)</summary>\n\n| | rule | where | message |\n|---|---|---|---|\n", o, title, len(fs))
		for _, f := range fs {
			mark := map[diag.Severity]string{diag.Error: "❌", diag.Warning: "⚠️", diag.Info: "ℹ️"}[f.Severity]
			if f.Waived != "" {
				mark = "🛡️"
			}
			where := f.Address
			if f.Source != nil {
				where = f.Source.String()
			}
			msg := f.Message
			if f.Waived != "" {
				msg += " _(waived: " + f.Waived + ")_"
			}
			fmt.Fprintf(w, "| %s | `%s` | `%s` | %s |\n", mark, f.Rule, where, strings.ReplaceAll(msg, "|", "\\|"))
		}
		fmt.Fprint(w, "\n</details>\n\n")
	}
	findings("New policy findings", r.NewFindings, true)
	findings("Fixed policy findings", r.Fixed, false)
	findings("Unchanged policy findings", r.Unchanged, false)
}
