package load

import (
	"context"
	"testing"

	"weir.dev/weir/schema"
	"weir.dev/weir/testdata/bench/benchgen"
)

// BenchmarkLoadFront loads the generated 1,000-step spec (10,000 with
// WEIR_BENCH_PIPELINES=1000) written in each language, without the cache
// and from it; BenchmarkLoad is the CUE spec's cold load alone.
func BenchmarkLoadFront(b *testing.B) {
	for _, lang := range benchgen.Languages {
		dir := b.TempDir()
		if err := benchgen.GenerateLang(dir, benchPipelines(b), benchgen.Single, lang, schema.CUE); err != nil {
			b.Fatal(err)
		}
		b.Run(lang, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, ds := Load(context.Background(), dir, Options{})
				if ds.HasErrors() || res == nil {
					b.Fatal(ds)
				}
			}
		})
		b.Run(lang+"/cached", func(b *testing.B) {
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
		})
	}
}
