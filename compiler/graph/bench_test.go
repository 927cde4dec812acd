package graph_test

import (
	"context"
	"testing"

	"weir.dev/weir/compiler/graph"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

func benchLoad(b *testing.B, n int) *load.Result {
	b.Helper()
	dir := b.TempDir()
	if err := benchgen.Generate(dir, n, benchgen.Single, schema.CUE); err != nil {
		b.Fatal(err)
	}
	res, ds := load.Load(context.Background(), dir, load.Options{})
	if ds.HasErrors() {
		b.Fatal(ds)
	}
	return res
}

// BenchmarkBuild builds the step graph of the generated 1,000-step spec
// (references, expansion, digests, cache keys) from its IR.
func BenchmarkBuild(b *testing.B) {
	res := benchLoad(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		g, ds := graph.Build(res.Project, res.Sources, graph.Options{Dir: res.Dir})
		if ds.HasErrors() {
			b.Fatal(ds)
		}
		if len(g.Steps) != 100*benchgen.StepsPerPipeline {
			b.Fatalf("%d steps, want %d", len(g.Steps), 100*benchgen.StepsPerPipeline)
		}
	}
}

// BenchmarkCompile loads and builds the generated 1,000-step spec from
// scratch, as a cold `weir validate` does.
func BenchmarkCompile(b *testing.B) {
	dir := b.TempDir()
	if err := benchgen.Generate(dir, 100, benchgen.Single, schema.CUE); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, ds := load.Load(context.Background(), dir, load.Options{})
		if ds.HasErrors() {
			b.Fatal(ds)
		}
		if _, ds := graph.Build(res.Project, res.Sources, graph.Options{Dir: res.Dir}); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}
