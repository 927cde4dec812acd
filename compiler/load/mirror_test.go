package load

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
)

// leafTypes are IR types that hold one schema value which CUE writes in
// more than one shape (a string or a secret, a list or a range, a version or
// "latest"); the test treats them, and free-form values, as leaves.
var leafTypes = map[reflect.Type]bool{
	reflect.TypeOf(schema.EnvVar{}):      true,
	reflect.TypeOf(schema.SearchParam{}): true,
	reflect.TypeOf(schema.AliasTarget{}): true,
}

// irPaths lists every field path of an IR type by its JSON names, with "*"
// for map keys.
func irPaths(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if leafTypes[t] {
		return
	}
	switch t.Kind() {
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return
		}
		irPaths(t.Elem(), prefix+".*", out)
	case reflect.Slice:
		irPaths(t.Elem(), prefix, out)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				irPaths(f.Type, prefix, out)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := strings.TrimPrefix(prefix+"."+name, ".")
			out[p] = true
			if f.Tag.Get("weir") == "constraint" {
				continue
			}
			irPaths(f.Type, p, out)
		}
	}
}

// schemaPaths lists every field path the CUE schema allows under v.
func schemaPaths(v cue.Value, prefix string, out map[string]bool, depth int) {
	if depth > 12 {
		return
	}
	// A pattern constraint ([Name]: T) is a map: probe it with a key and
	// descend into T as "*".
	if v.IncompleteKind() == cue.StructKind && !hasFields(v) {
		probe := v.Unify(v.Context().CompileString("{zprobe: _}")).LookupPath(cue.ParsePath("zprobe"))
		if probe.Exists() && probe.Err() == nil {
			if probe.IncompleteKind() == cue.StructKind {
				schemaPaths(probe, prefix+".*", out, depth+1)
			}
			return
		}
	}
	if v.IncompleteKind() == cue.ListKind {
		if el := v.LookupPath(cue.MakePath(cue.AnyIndex)); el.Exists() {
			schemaPaths(el, prefix, out, depth+1)
		}
		return
	}
	if v.IncompleteKind() != cue.StructKind && !hasFields(v) {
		return // a scalar, or a disjunction of shapes: a leaf
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		if !sel.IsString() {
			continue
		}
		p := strings.TrimPrefix(prefix+"."+sel.Unquoted(), ".")
		out[p] = true
		schemaPaths(it.Value(), p, out, depth+1)
	}
}

func hasFields(v cue.Value) bool {
	it, err := v.Fields(cue.Optional(true))
	return err == nil && it.Next()
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestIRMirrorsSchema holds the Go IR and the CUE schema together: the same
// field paths, by the same names.
func TestIRMirrorsSchema(t *testing.T) {
	_, def, ds := compiledSchema()
	require.Empty(t, ds)
	fromSchema := map[string]bool{}
	schemaPaths(def, "", fromSchema, 0)
	fromIR := map[string]bool{}
	irPaths(reflect.TypeOf(schema.Project{}), "", fromIR)
	// config and data are free-form in both.
	assert.Equal(t, sortedSet(fromSchema), sortedSet(fromIR))
}

// TestCompleteSpec decodes a spec that sets every field and checks that
// every IR field came through and survives a JSON round trip.
func TestCompleteSpec(t *testing.T) {
	res, ds := Load(context.Background(), "../../testdata/complete", Options{})
	require.False(t, ds.HasErrors(), "%v", ds)
	b, err := json.Marshal(res.Project)
	require.NoError(t, err)
	var generic any
	require.NoError(t, json.Unmarshal(b, &generic))
	seen := map[string]bool{}
	var walk func(v any, prefix string)
	walk = func(v any, prefix string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				p := strings.TrimPrefix(prefix+"."+k, ".")
				seen[p] = true
				walk(x, p)
			}
		case []any:
			for _, x := range v {
				walk(x, prefix)
			}
		}
	}
	walk(generic, "")
	fromIR := map[string]bool{}
	irPaths(reflect.TypeOf(schema.Project{}), "", fromIR)
	var missing []string
	for p := range fromIR {
		found := false
		for s := range seen {
			if matchPath(p, s) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "fields of the IR the complete spec does not set (or that do not decode)")

	var back schema.Project
	require.NoError(t, json.Unmarshal(b, &back))
	b2, err := json.Marshal(&back)
	require.NoError(t, err)
	assert.JSONEq(t, string(b), string(b2))
	assert.Equal(t, "int & >=1", res.Project.Datasets["customers"].Schema["id"])
	assert.Equal(t, []schema.Bound{{Op: ">=", Value: 1}}, res.Project.Datasets["customers"].Rules["id"].Bounds)
	assert.Equal(t, []string{"a", "b"}, res.Project.Datasets["customers"].Rules["plan"].Enum)
	assert.Equal(t, schema.EnvVar{Secret: "env:TOKEN"}, res.Project.Features["churn_v1"].Transform.Env["TOKEN"])
	assert.True(t, res.Project.Models["churn"].Aliases["staging"].Latest)
	assert.Equal(t, 1, res.Project.Models["churn"].Aliases["production"].Version)
}

// matchPath matches an IR path with "*" for map keys against a concrete one.
func matchPath(pattern, path string) bool {
	pp, cp := strings.Split(pattern, "."), strings.Split(path, ".")
	if len(pp) != len(cp) {
		return false
	}
	for i := range pp {
		if pp[i] != "*" && pp[i] != cp[i] {
			return false
		}
	}
	return true
}
