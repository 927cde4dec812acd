package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/policies"
)

// BuiltinPrefix starts the file names of the built-in bundle's modules
// ("@builtin/image_digest.rego") in rules, diagnostics and coverage.
const BuiltinPrefix = "@builtin"

// bundle is every module and data document loaded from the sources of one
// Options.
type bundle struct {
	modules map[string]*ast.Module // by file name
	tests   map[string]bool        // file names of _test.rego modules
	builtin map[string]bool        // file names from the built-in bundle
	data    map[string]any
	// files are the non-test modules' sources by file name, for
	// Engine.Dump.
	files map[string]moduleFile
	// sum digests every module's name and text, in the order read (see
	// compiled).
	sum hash.Hash
	// parse is whether modules are parsed as they are read.
	parse bool
}

// moduleFile is one loaded module's text; rel is its path under the
// dump's policies folder.
type moduleFile struct {
	rel string
	src []byte
}

// load reads the built-in bundle and the user folders: .rego modules
// (parsed as Rego v1 with annotations) and .json/.yaml/.yml data documents,
// placed in data at the path of their folder relative to the source's root
// (OPA's convention). _test.rego files are kept only withTests. Config is
// merged over data.weir.config last, so the spec's policy.data wins.
func load(opts Options, withTests bool) (*bundle, diag.Diagnostics) {
	return loadSources(opts, withTests, true)
}

// loadSources is load; unless parse, the modules are read, listed in
// files, tests and builtin and digested into sum, but not parsed: modules
// stays empty, and files may list empty modules, which parsing leaves out.
func loadSources(opts Options, withTests, parse bool) (*bundle, diag.Diagnostics) {
	b := &bundle{
		modules: map[string]*ast.Module{},
		tests:   map[string]bool{},
		builtin: map[string]bool{},
		data:    map[string]any{},
		files:   map[string]moduleFile{},
	}
	b.sum, b.parse = sha256.New(), parse
	var ds diag.Diagnostics
	if opts.Builtin {
		ds = append(ds, b.addFS(policies.FS, ".", BuiltinPrefix, "", true, withTests)...)
	}
	for i, dir := range opts.Dirs {
		under := fmt.Sprintf("_dir%d", i+1) // never a folder of the built-in bundle
		st, err := os.Stat(dir)
		if err != nil {
			ds = append(ds, diag.Errorf("policy-load", "", nil, "cannot read policy folder %s: %v", dir, errors.Unwrap(err)))
			continue
		}
		if st.IsDir() {
			ds = append(ds, b.addFS(os.DirFS(dir), ".", dir, under, false, withTests)...)
		} else {
			ds = append(ds, b.addFS(os.DirFS(filepath.Dir(dir)), filepath.Base(dir), filepath.Dir(dir), under, false, withTests)...)
		}
	}
	if len(opts.Config) > 0 {
		var cfg any = opts.Config
		if err := util.RoundTrip(&cfg); err != nil {
			ds = append(ds, diag.Errorf("policy-data", "policy.data", nil, "policy.data cannot be handed to policies: %v", err))
		} else if err := merge(b.data, []string{"weir", "config"}, cfg, true); err != nil {
			ds = append(ds, diag.Errorf("policy-data", "policy.data", nil, "policy.data: %v", err))
		}
	}
	return b, ds
}

// addFS walks fsys from root. display is how file names are shown: the
// folder as the user gave it, or BuiltinPrefix; under is the folder of its
// modules in a dump (Engine.Dump).
func (b *bundle) addFS(fsys fs.FS, root, display, under string, builtin, withTests bool) diag.Diagnostics {
	var ds diag.Diagnostics
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			ds = append(ds, diag.Errorf("policy-load", "", nil, "cannot read %s: %v", displayName(display, p, builtin), err))
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		name := displayName(display, p, builtin)
		switch ext := path.Ext(p); ext {
		case ".rego":
			isTest := strings.HasSuffix(p, "_test.rego")
			if isTest && !withTests {
				return nil
			}
			src, err := fs.ReadFile(fsys, p)
			if err != nil {
				ds = append(ds, diag.Errorf("policy-load", "", nil, "cannot read %s: %v", name, err))
				return nil
			}
			fmt.Fprintf(b.sum, "%q %t %t %d\n", name, isTest, builtin, len(src))
			b.sum.Write(src)
			if b.parse {
				m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
				if err != nil {
					ds = append(ds, regoErrors("policy-syntax", err, name)...)
					return nil
				}
				if m == nil { // an empty file
					return nil
				}
				b.modules[name] = m
			}
			b.tests[name] = isTest
			b.builtin[name] = builtin
			if !isTest {
				b.files[name] = moduleFile{rel: path.Join(under, p), src: src}
			}
		case ".json", ".yaml", ".yml":
			src, err := fs.ReadFile(fsys, p)
			if err != nil {
				ds = append(ds, diag.Errorf("policy-load", "", nil, "cannot read %s: %v", name, err))
				return nil
			}
			var x any
			if err := util.Unmarshal(src, &x); err != nil {
				ds = append(ds, diag.Errorf("policy-data", "", &diag.Range{Filename: name}, "%s is not valid %s: %v", name, strings.TrimPrefix(ext, "."), err))
				return nil
			}
			var at []string // the folder of the file, relative to the root
			if dir := path.Dir(p); root == "." && dir != "." {
				at = strings.Split(dir, "/")
			}
			if err := merge(b.data, at, x, false); err != nil {
				ds = append(ds, diag.Errorf("policy-data", "", &diag.Range{Filename: name}, "%s: %v", name, err))
			}
		}
		return nil
	})
	if err != nil {
		ds = append(ds, diag.Errorf("policy-load", "", nil, "cannot read %s: %v", display, err))
	}
	return ds
}

func displayName(display, p string, builtin bool) string {
	if builtin {
		return path.Join(display, p)
	}
	return filepath.Join(display, filepath.FromSlash(p))
}

// merge puts x into data at the path at, merging objects key by key. Two
// documents that give one key different non-object values conflict unless
// overwrite is set (then x wins).
func merge(data map[string]any, at []string, x any, overwrite bool) error {
	if len(at) == 0 {
		obj, ok := x.(map[string]any)
		if !ok {
			return fmt.Errorf("a data file at the root of a policy folder must hold an object")
		}
		for _, k := range sortedKeys(obj) {
			if err := mergeKey(data, k, obj[k], []string{k}, overwrite); err != nil {
				return err
			}
		}
		return nil
	}
	var nested any = x
	for i := len(at) - 1; i >= 1; i-- {
		nested = map[string]any{at[i]: nested}
	}
	return mergeKey(data, at[0], nested, at[:1], overwrite)
}

func mergeKey(dst map[string]any, k string, v any, where []string, overwrite bool) error {
	old, exists := dst[k]
	if !exists {
		dst[k] = v
		return nil
	}
	om, ok1 := old.(map[string]any)
	nm, ok2 := v.(map[string]any)
	if ok1 && ok2 {
		for _, kk := range sortedKeys(nm) {
			if err := mergeKey(om, kk, nm[kk], append(append([]string(nil), where...), kk), overwrite); err != nil {
				return err
			}
		}
		return nil
	}
	if overwrite || equalJSON(old, v) {
		dst[k] = v
		return nil
	}
	return fmt.Errorf("data.%s is given twice with different values", strings.Join(where, "."))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func equalJSON(a, b any) bool {
	va, err1 := ast.InterfaceToValue(a)
	vb, err2 := ast.InterfaceToValue(b)
	return err1 == nil && err2 == nil && va.Compare(vb) == 0
}

// regoErrors adapts OPA's parse and compile errors (ast.Errors, with a
// location each) to diagnostics; anything else becomes one diagnostic at
// file.
func regoErrors(code string, err error, file string) diag.Diagnostics {
	var errs ast.Errors
	if errors.As(err, &errs) {
		ds := make(diag.Diagnostics, 0, len(errs))
		for _, e := range errs {
			ds = append(ds, regoError(code, e, file))
		}
		return ds
	}
	var one *ast.Error
	if errors.As(err, &one) {
		return diag.Diagnostics{regoError(code, one, file)}
	}
	var rng *diag.Range
	if file != "" {
		rng = &diag.Range{Filename: file}
	}
	return diag.Diagnostics{diag.Errorf(code, "", rng, "%v", err)}
}

func regoError(code string, e *ast.Error, file string) diag.Diagnostic {
	d := diag.Errorf(code, "", locationRange(e.Location, file), "%s", e.Message)
	if e.Details != nil {
		if lines := e.Details.Lines(); len(lines) > 0 {
			d.Detail = strings.Join(lines, "\n")
		}
	}
	d.Detail = strings.TrimSpace(d.Detail + "\n(" + e.Code + ")")
	return d
}

// locationRange converts an OPA location (1-based row and column) to a
// range; file is used when the location has none.
func locationRange(loc *ast.Location, file string) *diag.Range {
	if loc == nil {
		if file == "" {
			return nil
		}
		return &diag.Range{Filename: file}
	}
	name := loc.File
	if name == "" {
		name = file
	}
	p := diag.Pos{Line: loc.Row, Column: loc.Col, Offset: loc.Offset}
	end := p
	if n := len(loc.Text); n > 0 && !strings.Contains(string(loc.Text), "\n") {
		end.Column += n
		end.Offset += n
	}
	return &diag.Range{Filename: name, Start: p, End: end}
}
