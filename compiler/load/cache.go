package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"

	"weir.dev/weir/schema"
)

// cacheVersion changes whenever the decoder or the cached shape changes, so
// an older cache entry is never read by a newer weir.
const cacheVersion = "weir-eval-1"

// cacheEntry is an evaluated spec: the IR (with its compiled rules, which
// the IR's JSON leaves out), its source map and its hash.
type cacheEntry struct {
	Project   *schema.Project                         `json:"project"`
	Rules     map[string]map[string]schema.ColumnRule `json:"rules,omitempty"`
	GateRules map[string]map[string]schema.ColumnRule `json:"gate_rules,omitempty"`
	Sources   schema.SourceMap                        `json:"sources"`
	SpecHash  string                                  `json:"spec_hash"`
}

// cacheKey digests everything evaluation depends on: the spec files, the
// embedded schema, and the cache version. Imported packages under cue.mod
// are included, so changing a vendored package re-evaluates.
func cacheKey(dir string, files []*specFile) (string, error) {
	h := sha256.New()
	h.Write([]byte(cacheVersion))
	h.Write(schema.CUE)
	addBytes := func(rel string, b []byte) {
		h.Write([]byte{0})
		h.Write([]byte(rel))
		h.Write([]byte{0})
		h.Write(b)
	}
	add := func(rel string) error {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		addBytes(rel, b)
		return nil
	}
	for _, f := range files {
		addBytes(f.name, f.src)
	}
	mod := filepath.Join(dir, "cue.mod")
	if _, err := os.Stat(mod); err == nil {
		err := filepath.WalkDir(mod, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(p) != ".cue" {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			return add(rel)
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func cachePath(cacheDir, key string) string {
	return filepath.Join(cacheDir, "eval-"+key[:32]+".json")
}

func readCache(cacheDir, key string) (*cacheEntry, bool) {
	b, err := os.ReadFile(cachePath(cacheDir, key))
	if err != nil {
		return nil, false
	}
	var c cacheEntry
	if json.Unmarshal(b, &c) != nil || c.Project == nil {
		return nil, false
	}
	for name, rules := range c.Rules {
		if ds := c.Project.Datasets[name]; ds != nil {
			ds.Rules = rules
		}
	}
	for name, rules := range c.GateRules {
		if m := c.Project.Models[name]; m != nil {
			m.GateRules = rules
		}
	}
	return &c, true
}

// writeCache stores an evaluation atomically (temp file + rename). Old
// entries are removed so the folder holds one entry per project.
func writeCache(cacheDir, key string, res *Result) error {
	c := cacheEntry{Project: res.Project, Sources: res.Sources, SpecHash: res.SpecHash,
		Rules: map[string]map[string]schema.ColumnRule{}, GateRules: map[string]map[string]schema.ColumnRule{}}
	for name, ds := range res.Project.Datasets {
		if len(ds.Rules) > 0 {
			c.Rules[name] = ds.Rules
		}
	}
	for name, m := range res.Project.Models {
		if len(m.GateRules) > 0 {
			c.GateRules[name] = m.GateRules
		}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(cacheDir, "eval-*.json"))
	tmp, err := os.CreateTemp(cacheDir, ".eval-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	dst := cachePath(cacheDir, key)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	for _, o := range old {
		if o != dst {
			os.Remove(o)
		}
	}
	return nil
}
