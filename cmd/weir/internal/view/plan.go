package view

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"weir.dev/weir/schema"
)

// Plan prints a plan the way Terraform users expect: one line per step and
// resource with its action symbol, address and reason, the policy findings,
// and a summary line.
func Plan(out io.Writer, p *schema.Plan) {
	st := StyleFor(out)
	// A line per step: one system call per 64 KiB, not per line.
	w := bufio.NewWriterSize(out, 64*1024)
	defer w.Flush()
	fmt.Fprintf(w, "Weir will apply project %s (state serial %d).\n", st.Bold(p.Project), p.StateSerial)
	if len(p.Targets) > 0 {
		fmt.Fprintf(w, "Targets: %s\n", strings.Join(p.Targets, ", "))
	}
	fmt.Fprintln(w)
	width, kw := 0, 0
	for _, s := range p.Steps {
		width = max(width, len(s.Address))
		kw = max(kw, len(s.Kind)+1+len(where(s)))
	}
	for _, c := range p.Changes {
		width = max(width, len(c.Address))
	}
	for _, s := range p.Steps {
		sym := symbol(st, s.Action)
		if s.Action == schema.ActionNoop {
			// A step whose resources are live and unchanged: it runs, and
			// changes nothing.
			sym = st.Dim(fmt.Sprintf("%-3s", "="))
		}
		fmt.Fprintf(w, "  %s %-*s  %s  %s\n", sym, width, s.Address,
			st.Dim(fmt.Sprintf("%-*s", kw, s.Kind+"@"+where(s))), reasonStyle(st, s.Action, s.Reason))
		for _, line := range s.Diff {
			fmt.Fprintf(w, "        %s\n", diffStyle(st, line))
		}
	}
	if len(p.Changes) > 0 {
		fmt.Fprintln(w)
		for _, c := range p.Changes {
			change := c.After
			switch {
			case c.Action == schema.ActionNoop && c.Before != "" && strings.HasPrefix(c.After, c.Before+" "):
				change = c.After
			case c.Action == schema.ActionNoop && c.Before != "" && c.Before != c.After:
				change = c.Before + " (follows " + c.After + ")"
			case c.Before != "" && c.Before != c.After:
				change = c.Before + " -> " + c.After
			}
			desc := c.Type + " " + change
			if c.Reason != "" && c.Action != schema.ActionNoop {
				desc += " (" + c.Reason + ")"
			}
			fmt.Fprintf(w, "  %s %-*s  %s\n", symbol(st, c.Action), width, c.Address, desc)
		}
	}
	if len(p.Findings) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Policy findings:")
		for _, f := range p.Findings {
			loc := ""
			if f.Source != nil {
				loc = f.Source.String() + ": "
			}
			sev := f.Severity.String()
			if f.Waived != "" {
				sev = "waived"
			}
			fmt.Fprintf(w, "  %s%s [%s] %s\n", loc, sev, f.Rule, f.Message)
		}
	}
	if e := p.Estimate; e != nil && (e.CPUHours > 0 || e.GPUHours > 0) {
		fmt.Fprintf(w, "\nEstimate: %.2f CPU-hours, %.2f GPU-hours, cost %.2f\n", e.CPUHours, e.GPUHours, e.Cost)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, Summary(p))
}

// where names who runs a step: weir itself for builtin steps, else the
// backend.
func where(s *schema.Step) string {
	if s.Builtin {
		return "weir"
	}
	return s.Backend
}

// Summary is the plan's closing line.
func Summary(p *schema.Plan) string {
	s := p.Summary
	if !p.HasChanges() {
		return fmt.Sprintf("No changes. %d cached, nothing to run.", s.Cached)
	}
	return fmt.Sprintf("Plan: %d to run, %d cached, %d to create, %d to update, %d to delete.",
		s.Run, s.Cached, s.Create, s.Update, s.Delete+s.Replace)
}

func symbol(st Style, a schema.Action) string {
	sym := fmt.Sprintf("%-3s", a.Symbol())
	switch a {
	case schema.ActionRun:
		return st.Cyan(sym)
	case schema.ActionCreate:
		return st.Green(sym)
	case schema.ActionUpdate:
		return st.Yellow(sym)
	case schema.ActionDelete, schema.ActionReplace:
		return st.Red(sym)
	case schema.ActionCached:
		return st.Dim(sym)
	}
	return sym
}

// diffStyle colours a line a step lists under it by its leading action
// symbol (an object created, updated, deleted); field lines and notes stay
// plain.
func diffStyle(st Style, line string) string {
	switch {
	case strings.HasPrefix(line, "+ "):
		return st.Green(line)
	case strings.HasPrefix(line, "~ "):
		return st.Yellow(line)
	case strings.HasPrefix(line, "- "):
		return st.Red(line)
	}
	return line
}

func reasonStyle(st Style, a schema.Action, r string) string {
	if a == schema.ActionCached {
		return st.Dim(r)
	}
	return r
}

// Graph renders the plan's step graph as Graphviz dot or Mermaid.
func Graph(w io.Writer, p *schema.Plan, format string) error {
	id := map[string]string{}
	for i, s := range p.Steps {
		id[s.Address] = fmt.Sprintf("s%d", i)
	}
	switch format {
	case "dot":
		fmt.Fprintf(w, "digraph %q {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n", p.Project)
		for _, s := range p.Steps {
			fmt.Fprintf(w, "  %s [label=%q];\n", id[s.Address], s.Address+"\n"+s.Kind)
		}
		for _, s := range p.Steps {
			for _, n := range s.Needs {
				fmt.Fprintf(w, "  %s -> %s;\n", id[n], id[s.Address])
			}
		}
		fmt.Fprintln(w, "}")
	case "mermaid":
		fmt.Fprintln(w, "flowchart LR")
		for _, s := range p.Steps {
			fmt.Fprintf(w, "  %s[\"%s<br/><i>%s</i>\"]\n", id[s.Address], strings.ReplaceAll(s.Address, `"`, "#quot;"), s.Kind)
		}
		for _, s := range p.Steps {
			needs := append([]string{}, s.Needs...)
			sort.Strings(needs)
			for _, n := range needs {
				fmt.Fprintf(w, "  %s --> %s\n", id[n], id[s.Address])
			}
		}
	default:
		return fmt.Errorf("unknown graph format %q: use dot or mermaid", format)
	}
	return nil
}
