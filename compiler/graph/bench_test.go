package graph_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"weir.dev/weir/compiler/graph"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// benchPipelines is the size of the benchmark project: 100 pipelines
// (1,000 steps), or WEIR_BENCH_PIPELINES.
func benchPipelines(b *testing.B) int {
	if s := os.Getenv("WEIR_BENCH_PIPELINES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("WEIR_BENCH_PIPELINES=%s: %v", s, err)
		}
		return n
	}
	return 100
}

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
	res := benchLoad(b, benchPipelines(b))
	b.ReportAllocs()
	for b.Loop() {
		g, ds := graph.Build(res.Project, res.Sources, graph.Options{Dir: res.Dir})
		if ds.HasErrors() {
			b.Fatal(ds)
		}
		if want := benchPipelines(b) * benchgen.StepsPerPipeline; len(g.Steps) != want {
			b.Fatalf("%d steps, want %d", len(g.Steps), want)
		}
	}
}

// BenchmarkCompile loads and builds the generated 1,000-step spec from
// scratch, as a cold `weir validate` does.
func BenchmarkCompile(b *testing.B) {
	dir := b.TempDir()
	if err := benchgen.Generate(dir, benchPipelines(b), benchgen.Single, schema.CUE); err != nil {
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
