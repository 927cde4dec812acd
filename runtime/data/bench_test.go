package data

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"weir.dev/weir/runtime/data/internal/gen"
	"weir.dev/weir/schema"
)

// The benchmarks read one generated file of benchRows rows × 10 columns:
//
//	go test -bench . -benchmem -run '^$' ./runtime/data/
//
// BenchmarkCSVRead is the yardstick: encoding/csv reading every record with
// ReuseRecord through the same 64 KiB buffer Validate uses. The target is
// BenchmarkValidate at half its MB/s or better.

const benchRows = 1_000_000

var benchDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-data-bench-")
	if err != nil {
		panic(err)
	}
	benchDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var benchFile = sync.OnceValues(func() (string, error) {
	path := filepath.Join(benchDir, "customers.csv")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := gen.WriteCSV(f, benchRows, 1); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
})

func benchInput(b *testing.B) (string, int64) {
	b.Helper()
	path, err := benchFile()
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

// report reports rows/s and the CPU time per operation (every goroutine,
// GC included): wall time is throughput on the cores that were free, CPU
// time is the work done, which stays comparable when other processes share
// the machine.
func report(b *testing.B, rows int64, ops int, cpu time.Duration) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	if cpu > 0 && ops > 0 {
		b.ReportMetric(cpu.Seconds()*1000/float64(ops), "cpu-ms/op")
	}
}

func BenchmarkCSVRead(b *testing.B) {
	path, size := benchInput(b)
	b.SetBytes(size)
	var total int64
	ops, cpu0 := 0, cpuTime()
	for b.Loop() {
		ops++
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r := csv.NewReader(bufio.NewReaderSize(f, readBuffer))
		r.ReuseRecord = true
		if _, err := r.Read(); err != nil { // the header
			b.Fatal(err)
		}
		for {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			total++
		}
		f.Close()
	}
	report(b, total, ops, cpuTime()-cpu0)
}

func BenchmarkValidate(b *testing.B) {
	path, size := benchInput(b)
	cfg := schema.ValidateConfig{Format: "csv", Rules: gen.Rules()}
	b.SetBytes(size)
	var total int64
	ops, cpu0 := 0, cpuTime()
	for b.Loop() {
		ops++
		rep, err := Validate(context.Background(), path, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if rep.ViolationCount != benchRows/gen.BadEvery {
			b.Fatalf("got %d violations, want %d", rep.ViolationCount, benchRows/gen.BadEvery)
		}
		total += rep.Rows
	}
	report(b, total, ops, cpuTime()-cpu0)
}

func BenchmarkProfile(b *testing.B) {
	path, size := benchInput(b)
	cfg := schema.ProfileConfig{Format: "csv", PII: []string{"customer_id"}}
	b.SetBytes(size)
	var total int64
	ops, cpu0 := 0, cpuTime()
	for b.Loop() {
		ops++
		p, err := Profile(context.Background(), path, cfg)
		if err != nil {
			b.Fatal(err)
		}
		total += p.Rows
	}
	report(b, total, ops, cpuTime()-cpu0)
}

// BenchmarkProfileSampled profiles with a sample smaller than the table, so
// quantiles come from the reservoir and histograms from a second pass.
func BenchmarkProfileSampled(b *testing.B) {
	path, size := benchInput(b)
	cfg := schema.ProfileConfig{Format: "csv", PII: []string{"customer_id"}}
	b.SetBytes(size)
	var total int64
	ops, cpu0 := 0, cpuTime()
	for b.Loop() {
		ops++
		p, err := Profile(context.Background(), path, cfg, WithSampleSize(1<<16))
		if err != nil {
			b.Fatal(err)
		}
		total += p.Rows
	}
	report(b, total, ops, cpuTime()-cpu0)
}
