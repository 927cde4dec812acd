package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/google/go-jsonnet"
)

// Caching a Jsonnet spec's evaluation.
//
// What weir.jsonnet evaluates to depends on its text, the external
// variables and top-level arguments, and every file it (or the code in
// those arguments) imports, which only evaluating it tells. So the cache
// works in two steps, as a build cache does: the inputs known up front
// (jsonnetInputsKey) name a list of the imports the last evaluation made,
// each with what it resolved to and a digest of what it read; when every
// import still resolves to the same file with the same content, the inputs
// and that list together are the key of the cached evaluation. Evaluation
// is deterministic given what its imports read, so the same imports read
// the same way give the same result. A failed import is recorded too, so a
// file that appears later changes the key.

// jsonnetImport is one import an evaluation made.
type jsonnetImport struct {
	From  string `json:"from"`  // the importing file ("" from an argument's code)
	Path  string `json:"path"`  // the path as written
	Found string `json:"found"` // where it resolved; "" when it failed
	Sum   string `json:"sum"`   // SHA-256 of the content read
}

// recordingImporter is the importer of an evaluation that records every
// import.
type recordingImporter struct {
	imp jsonnet.Importer
	mu  sync.Mutex
	got map[[2]string]jsonnetImport
}

func newRecordingImporter(dir string) *recordingImporter {
	return &recordingImporter{imp: &jsonnet.FileImporter{JPaths: []string{dir}}, got: map[[2]string]jsonnetImport{}}
}

// Import implements jsonnet.Importer.
func (r *recordingImporter) Import(from, path string) (jsonnet.Contents, string, error) {
	c, found, err := r.imp.Import(from, path)
	rec := jsonnetImport{From: from, Path: path}
	if err == nil {
		rec.Found, rec.Sum = found, contentSum(c.Data())
	}
	r.mu.Lock()
	r.got[[2]string{from, path}] = rec
	r.mu.Unlock()
	return c, found, err
}

// imports are the recorded imports, sorted.
func (r *recordingImporter) imports() []jsonnetImport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]jsonnetImport, 0, len(r.got))
	for _, i := range r.got {
		out = append(out, i)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].Path < out[j].Path
	})
	return out
}

func contentSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// jsonnetInputsKey digests what an evaluation of f depends on, its imports
// aside: the entry file, the external variables and the top-level
// arguments.
func jsonnetInputsKey(f *specFile, in Inputs) string {
	h := newKeyHash("jsonnet", "")
	h.add(f.name, f.src)
	for _, m := range []struct {
		kind string
		vals map[string]string
	}{{"ext-str", in.ExtStr}, {"ext-code", in.ExtCode}, {"tla-str", in.TLAStr}, {"tla-code", in.TLACode}} {
		addSorted(h, m.kind, m.vals)
	}
	return h.sum()
}

// addSorted adds a map of named values to a key, in the order of the
// names.
func addSorted(h keyHash, kind string, vals map[string]string) {
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	h.add(kind, []byte(strconv.Itoa(len(names))))
	for _, k := range names {
		h.add(k, []byte(vals[k]))
	}
}

// jsonnetKey is the cache key of an evaluation whose inputs digest to
// inputs and which made imports.
func jsonnetKey(inputs string, imports []jsonnetImport) string {
	h := newKeyHash("jsonnet-imports", inputs)
	for _, i := range imports {
		h.add(i.From, []byte(i.Path+"\x00"+i.Found+"\x00"+i.Sum))
	}
	return h.sum()
}

func importsPath(cacheDir, inputs string) string {
	return filepath.Join(cacheDir, "jsonnet-"+inputs[:32]+".json")
}

// cachedJsonnetKey is the key of the cached evaluation of f with in, or ""
// when it has none or an import it made now resolves or reads otherwise.
func cachedJsonnetKey(dir, cacheDir string, f *specFile, in Inputs) string {
	inputs := jsonnetInputsKey(f, in)
	b, err := os.ReadFile(importsPath(cacheDir, inputs))
	if err != nil {
		return ""
	}
	var imports []jsonnetImport
	if err := json.Unmarshal(b, &imports); err != nil {
		return ""
	}
	imp := &jsonnet.FileImporter{JPaths: []string{dir}}
	for _, i := range imports {
		c, found, err := imp.Import(i.From, i.Path)
		switch {
		case err != nil && i.Found == "":
		case err != nil, found != i.Found, contentSum(c.Data()) != i.Sum:
			return ""
		}
	}
	return jsonnetKey(inputs, imports)
}

// saveJsonnetImports records the imports of an evaluation of f with in and
// returns the key to cache it under. Older records are removed (the
// folder holds one, as it holds one evaluation); a failure to write only
// costs time later.
func saveJsonnetImports(cacheDir string, f *specFile, in Inputs, imports []jsonnetImport) string {
	inputs := jsonnetInputsKey(f, in)
	b, err := json.Marshal(imports)
	if err != nil {
		return ""
	}
	dst := importsPath(cacheDir, inputs)
	old, _ := filepath.Glob(filepath.Join(cacheDir, "jsonnet-*.json"))
	if err := writeAtomic(cacheDir, dst, b); err != nil {
		return ""
	}
	for _, o := range old {
		if o != dst {
			os.Remove(o)
		}
	}
	return jsonnetKey(inputs, imports)
}
