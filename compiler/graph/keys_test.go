package graph

import (
	"context"
	"encoding/json"
	"maps"
	"runtime"
	"testing"

	"weir.dev/weir/compiler/load"
	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// TestParallelKeys: keys computed level by level on several goroutines
// are those computed one step after the other.
func TestParallelKeys(t *testing.T) {
	dir := t.TempDir()
	if err := benchgen.Generate(dir, 30, benchgen.Single, schema.CUE); err != nil {
		t.Fatal(err)
	}
	ld, ds := load.Load(context.Background(), dir, load.Options{})
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	build := func(threshold int) *Graph {
		t.Helper()
		defer func(old int) { parallelKeys = old }(parallelKeys)
		parallelKeys = threshold
		g, ds := Build(ld.Project, ld.Sources, Options{Dir: dir})
		if ds.HasErrors() {
			t.Fatal(ds)
		}
		return g
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	one, par := build(1<<30), build(1)
	if len(one.Steps) != len(par.Steps) || len(one.Steps) < 100 {
		t.Fatalf("%d and %d steps", len(one.Steps), len(par.Steps))
	}
	for i, s := range one.Steps {
		p := par.Steps[i]
		if s.Address != p.Address || s.CacheKey != p.CacheKey || !maps.Equal(s.KeyParts, p.KeyParts) {
			t.Fatalf("step %d: %s %s %v, in parallel %s %s %v", i, s.Address, s.CacheKey, s.KeyParts, p.Address, p.CacheKey, p.KeyParts)
		}
		if s.CacheKey == "" {
			t.Fatalf("%s has no key", s.Address)
		}
	}
}

// TestCacheKey: cacheKey is schema.CacheKey, plain or not.
func TestCacheKey(t *testing.T) {
	for _, parts := range []map[string]string{
		{},
		{"kind": "weir-key-1:trial", "image": "registry.example.com/ml/a:1.2@sha256:ab", "code": "sha256:00", "input:features": "sha256:11/features"},
		{"a": "x y", "b": "~!#$%^*()_+-={}[]|:;',./?`"},
		{"quote": `say "hi"`},
		{"back": `C:\code`},
		{"html": "<a href=x>&</a>"},
		{"ctl": "tab\there\nnew"},
		{"utf8": "café ☕"},
		{"bad": "\xff\xfe"},
		{"sep": "\u2028\u2029"},
		{"del": "\x7f"},
		{"k\"ey": "v"},
	} {
		if got, want := cacheKey(parts), schema.CacheKey(parts); got != want {
			t.Errorf("%q: %s, want %s", parts, got, want)
		}
	}
}

// TestDigestStrings: digestJSON of a []string is that of its JSON.
func TestDigestStrings(t *testing.T) {
	for _, ss := range [][]string{nil, {}, {"python", "train.py"}, {"a b", "<x>"}, {`"q"`}, {"é"}} {
		b, err := json.Marshal(ss)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := digestJSON(ss), digestBytes(b); got != want {
			t.Errorf("%q: %s, want %s", ss, got, want)
		}
	}
}
