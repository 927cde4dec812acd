// Package load turns a project folder into the IR: it loads the spec's CUE
// package (with a cue.mod module and its imports), unifies it with the
// embedded schema, and decodes the result into a schema.Project together with
// a SourceMap. It is the only package of Weir that imports cuelang.org/go,
// and it holds the HCL (weir.hcl, hcl.go) and Jsonnet (weir.jsonnet,
// jsonnet.go) front ends, which evaluate to plain data that is built into a
// CUE file positioned in their own source and checked the same way
// (convert.go).
//
// Every problem a user can cause comes back as diag.Diagnostics with
// file:line:col positions relative to the project folder; load never prints.
//
// A large spec is cut into parts that evaluate in parallel, each in a CUE
// context of its own, when its syntax shows that no element depends on
// another (split.go); anything a part reports sends the loader back to
// evaluating the spec whole, so diagnostics never depend on the cut. With
// Options.CacheDir, an unchanged spec is read back from one cache entry
// and an edited one re-evaluates only the parts the edit touches
// (cache.go).
package load

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueload "cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// SchemaImportPath is the import path under which a spec can import the
// schema's definitions: import "weir.dev/schema".
const SchemaImportPath = "weir.dev/schema"

// Options tune Load.
type Options struct {
	// CacheDir, when set, holds evaluation results keyed by the content of
	// the spec files (and of what an HCL or Jsonnet spec reads besides:
	// variables, external variables, top-level arguments, imported files),
	// so an unchanged spec is not evaluated again, and by the content of
	// each part of a split CUE spec, so an edit re-evaluates only the parts
	// it touches.
	CacheDir string
	Inputs
}

// Inputs are the values an HCL or Jsonnet spec reads from outside its
// files; a CUE spec has none.
type Inputs struct {
	// Vars set an HCL spec's variables (-var NAME=VALUE): a variable of
	// type string, or of no type, takes the text as it is; any other type
	// reads it as an HCL expression. A value for a variable the spec does
	// not declare is an error.
	Vars map[string]string
	// EnvVars are like Vars (WEIR_VAR_NAME=VALUE), with lower precedence;
	// values for undeclared variables are ignored.
	EnvVars map[string]string
	// ExtStr and ExtCode set a Jsonnet spec's external variables
	// (std.extVar) to a string or to Jsonnet code; TLAStr and TLACode its
	// top-level arguments when the spec is a function.
	ExtStr, ExtCode, TLAStr, TLACode map[string]string
}

// Result is a loaded spec.
type Result struct {
	// Dir is the project folder, absolute.
	Dir string
	// Files are the spec files read, relative to Dir, sorted.
	Files []string
	// Project is the decoded IR; nil when loading failed.
	Project *schema.Project
	// Sources maps field paths to where they are written.
	Sources schema.SourceMap
	// SpecHash is the digest of the IR: formatting and comments do not
	// change it.
	SpecHash string
	// Cached reports whether the evaluation came from the cache.
	Cached bool
}

// Load reads the spec in dir. The result is nil only when diagnostics hold an
// error that left nothing to decode; otherwise the result and the
// diagnostics are both returned, so a caller can report every error at once.
func Load(ctx context.Context, dir string, opts Options) (*Result, diag.Diagnostics) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("load", "", nil, "cannot resolve %s: %v", dir, err)}
	}
	files, diags := specFiles(abs)
	if diags.HasErrors() {
		return nil, diags
	}
	res := &Result{Dir: abs, Files: files}
	srcs, err := readSpecFiles(abs, files)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("load", "", nil, "reading the spec: %v", errText(err))}
	}

	lang := specLang(files[0])
	var key string
	if opts.CacheDir != "" {
		if key = specKey(abs, opts, lang, srcs); key != "" {
			if c, ok := readCache(opts.CacheDir, key); ok {
				res.Project, res.Sources, res.SpecHash, res.Cached = c.Project, c.Sources, c.SpecHash, true
				return res, nil
			}
		}
	}

	var (
		p  *schema.Project
		sm schema.SourceMap
	)
	switch lang {
	case "hcl":
		p, sm, diags = evaluateHCL(abs, srcs, opts)
	case "jsonnet":
		var imports []jsonnetImport
		p, sm, imports, diags = evaluateJsonnet(abs, srcs[0], opts)
		if opts.CacheDir != "" && p != nil && len(diags) == 0 {
			key = saveJsonnetImports(opts.CacheDir, srcs[0], opts.Inputs, imports)
		}
	default:
		var ok bool
		p, sm, ok = evaluateSplit(ctx, abs, srcs, opts.CacheDir)
		if !ok {
			p, sm, diags = evaluate(abs, files)
		}
	}
	if p == nil || diags.HasErrors() {
		return nil, diags
	}
	res.Project, res.Sources = p, sm
	res.SpecHash = HashProject(p)
	if key != "" && (lang == "cue" || len(diags) == 0) { // a cache hit reports nothing
		writeCache(opts.CacheDir, key, res) // a cache write failure only costs time later
	}
	return res, diags
}

// specKey is the cache key of the spec's evaluation, "" when it has none:
// the files (and cue.mod) of a CUE spec, the files and variables of an HCL
// spec, and for a Jsonnet spec its inputs and imports, known only from
// the last evaluation (jsonnet_cache.go).
func specKey(dir string, opts Options, lang string, srcs []*specFile) string {
	switch lang {
	case "hcl":
		return hclKey(srcs, opts.Inputs)
	case "jsonnet":
		return cachedJsonnetKey(dir, opts.CacheDir, srcs[0], opts.Inputs)
	}
	key, err := cacheKey(dir, srcs)
	if err != nil {
		return ""
	}
	return key
}

// readSpecFiles reads the spec files (names relative to dir).
func readSpecFiles(dir string, names []string) ([]*specFile, error) {
	out := make([]*specFile, len(names))
	for i, n := range names {
		path := filepath.Join(dir, n)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out[i] = &specFile{name: n, path: path, src: b}
	}
	return out, nil
}

// HashProject is the digest of the IR's canonical JSON (sorted keys), the
// spec hash recorded in plans.
func HashProject(p *schema.Project) string {
	b, _ := json.Marshal(p) // the IR is plain data: Marshal cannot fail
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// specFiles lists the spec files of the project folder: the .cue files (not
// cue.mod), or the .hcl files, or weir.jsonnet. A folder holding specs in
// two languages is an error naming a file of each.
func specFiles(dir string) ([]string, diag.Diagnostics) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("no-spec", "", nil, "project folder %s: %v", dir, errText(err))}
	}
	if !st.IsDir() {
		return nil, diag.Diagnostics{diag.Errorf("no-spec", "", nil, "%s is not a folder: give the project folder holding weir.cue", dir)}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("no-spec", "", nil, "reading %s: %v", dir, errText(err))}
	}
	byLang := map[string][]string{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if l := specLang(e.Name()); l != "" {
			byLang[l] = append(byLang[l], e.Name())
		}
	}
	var langs []string
	for l := range byLang {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	switch len(langs) {
	case 0:
		return nil, diag.Diagnostics{diag.Errorf("no-spec", "", nil, "no weir.cue (or any .cue file) in %s: run `weir init` to create one, or write weir.hcl or weir.jsonnet", dir)}
	case 1:
	default:
		a, b := byLang[langs[0]], byLang[langs[1]]
		sort.Strings(a)
		sort.Strings(b)
		return nil, diag.Diagnostics{diag.Errorf("mixed-spec", "", &diag.Range{Filename: b[0]},
			"the project folder holds specs in two languages, %s and %s: keep one (weir convert translates a spec)", a[0], b[0])}
	}
	files := byLang[langs[0]]
	sort.Strings(files)
	return files, nil
}

// HasSpec reports whether a folder holds a spec file in any language
// (whether it loads is Load's to say).
func HasSpec(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() && specLang(e.Name()) != "" {
			return true
		}
	}
	return false
}

// specLang is the language of a spec file name, "" for other files.
func specLang(name string) string {
	switch {
	case strings.HasSuffix(name, ".cue"):
		return "cue"
	case strings.HasSuffix(name, ".hcl") && !strings.HasPrefix(name, "."):
		return "hcl" // not .terraform.lock.hcl and other hidden files
	case name == "weir.jsonnet":
		return "jsonnet"
	}
	return ""
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

var (
	schemaOnce  sync.Once
	schemaCtx   *cue.Context
	projectDef  cue.Value
	schemaDiags diag.Diagnostics
)

// compiledSchema compiles the embedded schema once per process.
func compiledSchema() (*cue.Context, cue.Value, diag.Diagnostics) {
	schemaOnce.Do(func() {
		schemaCtx = cuecontext.New()
		v := schemaCtx.CompileBytes(schema.CUE, cue.Filename(SchemaImportPath+"/weir.cue"))
		if err := v.Err(); err != nil {
			schemaDiags = diag.Diagnostics{diag.Errorf("internal", "", nil, "the embedded schema does not compile: %v", err)}
			return
		}
		projectDef = v.LookupPath(cue.ParsePath("#Project"))
	})
	return schemaCtx, projectDef, schemaDiags
}

// baseOverlay makes the embedded schema importable as weir.dev/schema and,
// when the project has no cue.mod, gives it a module.
func baseOverlay(dir string) map[string]cueload.Source {
	overlay := map[string]cueload.Source{
		filepath.Join(dir, "cue.mod", "pkg", SchemaImportPath, "weir.cue"): cueload.FromBytes(schema.CUE),
	}
	if _, err := os.Stat(filepath.Join(dir, "cue.mod", "module.cue")); err != nil {
		overlay[filepath.Join(dir, "cue.mod", "module.cue")] = cueload.FromString(
			"module: \"weir.dev/project\"\nlanguage: version: \"v0.17.0\"\n")
	}
	return overlay
}

// evaluate loads, unifies with the schema, validates and decodes.
func evaluate(dir string, files []string) (*schema.Project, schema.SourceMap, diag.Diagnostics) {
	ctx, def, diags := compiledSchema()
	if diags != nil {
		return nil, nil, diags
	}
	cfg := &cueload.Config{Dir: dir, Overlay: baseOverlay(dir)}
	// The files are named one by one so a spec needs no package clause;
	// when they have one it must be the same in all of them.
	args := make([]string, len(files))
	for i, f := range files {
		args[i] = "./" + f
	}
	// Syntax errors first, each with its position (the loader reports
	// some of them without one).
	var syntax diag.Diagnostics
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, nil, diag.Diagnostics{diag.Errorf("load", "", nil, "reading %s: %v", f, errText(err))}
		}
		if _, err := parser.ParseFile(filepath.Join(dir, f), src, parser.ParseComments); err != nil {
			syntax = append(syntax, (&converter{dir: dir}).fromCUE(err, nil)...)
		}
	}
	if len(syntax) > 0 {
		for i := range syntax {
			syntax[i].Code = "syntax"
		}
		return nil, nil, syntax
	}
	insts := cueload.Instances(args, cfg)
	if len(insts) == 0 {
		return nil, nil, diag.Diagnostics{diag.Errorf("load", "", nil, "no CUE package in %s", dir)}
	}
	inst := insts[0]
	conv := &converter{dir: dir}
	if inst.Err != nil {
		return nil, nil, conv.fromCUE(inst.Err, nil)
	}
	v := ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return nil, nil, conv.fromCUE(err, nil)
	}
	return check(dir, def, v, sourceMap(dir, inst.Files))
}

// check unifies a spec's value with the schema, validates and decodes it;
// sm says where its fields are written.
func check(dir string, def, v cue.Value, sm schema.SourceMap) (*schema.Project, schema.SourceMap, diag.Diagnostics) {
	var diags diag.Diagnostics
	conv := &converter{dir: dir}
	u := def.Unify(v)
	// Validate finds conflicts, closedness and bounds; incomplete values
	// under column schemas and gates are constraints by design.
	conv.root, conv.sm = &u, sm
	if err := u.Validate(cue.Concrete(true), cue.Final()); err != nil {
		diags = append(diags, conv.fromCUE(err, constraintPath)...)
	}
	d := &decoder{conv: conv, sm: sm, root: u}
	var p schema.Project
	d.decode(u, "", reflectValue(&p))
	diags = append(diags, d.diags...)
	diags = diags.Dedup()
	diags.Sort()
	if diags.HasErrors() {
		return nil, sm, diags
	}
	return &p, sm, diags
}

// constraintPath reports whether a path holds CUE constraints by design
// (column schemas and gates), where an incomplete value is expected.
func constraintPath(path []string) bool {
	return len(path) >= 4 && ((path[0] == "datasets" && path[2] == "schema") || (path[0] == "models" && path[2] == "gates"))
}
