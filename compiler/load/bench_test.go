package load

import (
	"context"
	"os"
	"strconv"
	"testing"

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

// benchProject writes the generated benchmark project (10 steps per
// pipeline) to a temporary folder.
func benchProject(b *testing.B) string {
	b.Helper()
	n := benchPipelines(b)
	dir := b.TempDir()
	if err := benchgen.Generate(dir, n, benchgen.Single, schema.CUE); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkLoad loads the generated 1,000-step spec without the cache: CUE
// evaluation, schema check and decoding.
func BenchmarkLoad(b *testing.B) {
	dir := benchProject(b)
	b.ReportAllocs()
	for b.Loop() {
		res, ds := Load(context.Background(), dir, Options{})
		if ds.HasErrors() || res == nil {
			b.Fatal(ds)
		}
	}
}

// BenchmarkLoadCached loads the same spec from the evaluation cache.
func BenchmarkLoadCached(b *testing.B) {
	dir := benchProject(b)
	cache := b.TempDir()
	if _, ds := Load(context.Background(), dir, Options{CacheDir: cache}); ds.HasErrors() {
		b.Fatal(ds)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, ds := Load(context.Background(), dir, Options{CacheDir: cache})
		if ds.HasErrors() || !res.Cached {
			b.Fatal("not cached", ds)
		}
	}
}
