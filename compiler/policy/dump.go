package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Query is the Rego query Eval runs over the input: for each rule's deny,
// violation and warn, a variable bound to [value] ([] when the rule is
// undefined). It is empty when no policy has finding rules.
func (e *Engine) Query() string {
	return queryText(e.targets)
}

// Dump writes into dir what Eval evaluates for in, so that the opa CLI can
// evaluate the same thing (benchmarks, and debugging a policy outside
// Weir):
//
//	dir/input.json  the input document (see Input)
//	dir/data.json   the data document: the policy folders' data files and
//	                Options.Config (data.weir.config), merged
//	dir/policies/   the modules, tests left out: the built-in bundle's at
//	                the root, each of Options.Dirs under _dirN/
//	dir/query.rego  the query (Query)
//
// and then
//
//	opa eval -d dir/policies -d dir/data.json -i dir/input.json \
//		--format=raw "$(cat dir/query.rego)"
//
// gives the values Eval turns into findings (before enforcement overrides
// and waivers). dir/policies must not exist or be empty.
func (e *Engine) Dump(dir string, in Input) error {
	pdir := filepath.Join(dir, "policies")
	if ents, err := os.ReadDir(pdir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: remove it first", pdir)
	}
	val, err := in.Value()
	if err != nil {
		return fmt.Errorf("cannot build the policy input: %v", err)
	}
	x, err := ast.JSON(val)
	if err != nil {
		return err
	}
	write := func(name string, b []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}
	writeJSON := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		return write(name, b)
	}
	if err := writeJSON("input.json", x); err != nil {
		return err
	}
	data := e.data
	if data == nil {
		data = map[string]any{}
	}
	if err := writeJSON("data.json", data); err != nil {
		return err
	}
	names := make([]string, 0, len(e.files))
	for name := range e.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := e.files[name]
		if err := write("policies/"+f.rel, f.src); err != nil {
			return err
		}
	}
	return write("query.rego", []byte(e.Query()+"\n"))
}
