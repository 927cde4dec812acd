package exec_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// The executor's benchmarks run n no-op steps (`true <i>`) in a DAG of width
// 100 (step i needs step i-100), as testdata/bench/run-exec.sh does against
// make -j2, with a real state file and artifact store:
//
//   - Noop: the real local backend, 2 at a time: spawn cost plus Weir's.
//   - Instant: a backend whose tasks end at once: Weir's overhead alone
//     (work folder, state writes, scheduling), per step.
//   - Cached: every step reused from an earlier run (the executor's reuse
//     path: cache probe, artifact check, state record).
//
// cpu-µs/step is Weir's own CPU time per step (its programs' excluded),
// steadier than wall time on a busy machine.
//
// Profile with
//
//	go test ./runtime/exec -run '^$' -bench ApplyInstant1000 -cpuprofile cpu.out
//	go tool pprof -top cpu.out

func BenchmarkApplyNoop1000(b *testing.B)     { benchApply(b, 1000, local.New(0), false) }
func BenchmarkApplyNoop10000(b *testing.B)    { benchApply(b, 10000, local.New(0), false) }
func BenchmarkApplyInstant1000(b *testing.B)  { benchApply(b, 1000, &instant{}, false) }
func BenchmarkApplyInstant10000(b *testing.B) { benchApply(b, 10000, &instant{}, false) }
func BenchmarkApplyCached1000(b *testing.B)   { benchApply(b, 1000, &instant{}, true) }
func BenchmarkApplyCached10000(b *testing.B)  { benchApply(b, 10000, &instant{}, true) }

// noopPlan is n steps `true <i>`, step i needing step i-w.
func noopPlan(n, w int) *schema.Plan {
	p := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "bench"}
	name := func(i int) string { return fmt.Sprintf("tasks.t%05d", i) }
	for i := 0; i < n; i++ {
		s := &schema.Step{Address: name(i), Kind: "task", Element: name(i), Backend: "local", Action: schema.ActionRun,
			Run:      &schema.StepRun{Command: []string{"true", strconv.Itoa(i)}},
			CacheKey: fmt.Sprintf("%064x", i+1), KeyParts: map[string]string{"command": `["true","` + strconv.Itoa(i) + `"]`}}
		if i >= w {
			s.Needs = []string{name(i - w)}
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

type benchEnv struct {
	dir   string
	db    *state.DB
	store *artifact.Store
}

func openBenchEnv(b *testing.B, dir string) *benchEnv {
	b.Helper()
	db, err := state.Open(context.Background(), filepath.Join(dir, ".weir", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{dir: dir, db: db, store: store}
}

var benchRun int

func (e *benchEnv) apply(b *testing.B, p *schema.Plan, be backend.Interface) *exec.Report {
	b.Helper()
	benchRun++
	rep, err := exec.Apply(context.Background(), p, exec.Options{
		ProjectDir:  e.dir,
		WorkRoot:    filepath.Join(e.dir, ".weir", "runs"),
		State:       e.db,
		Store:       e.store,
		Backends:    map[string]backend.Interface{"local": be},
		Parallelism: 2,
		BaseEnv:     map[string]string{"PATH": os.Getenv("PATH")},
		RunID:       fmt.Sprintf("bench-%d-%d", benchRun, time.Now().UnixNano()),
	})
	if err != nil {
		b.Fatal(err)
	}
	return rep
}

func benchApply(b *testing.B, n int, be backend.Interface, cached bool) {
	p := noopPlan(n, 100)
	var e *benchEnv
	if cached {
		e = openBenchEnv(b, b.TempDir())
		defer e.db.Close()
		e.apply(b, p, be)
		for _, s := range p.Steps {
			s.Action = schema.ActionCached
		}
	}
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !cached {
			b.StopTimer()
			if e != nil {
				e.db.Close()
			}
			e = openBenchEnv(b, b.TempDir())
			b.StartTimer()
		}
		cpu0 := cpuTime()
		rep := e.apply(b, p, be)
		cpu += cpuTime() - cpu0
		want := state.StatusSucceeded
		if cached {
			want = state.StatusCached
		}
		if rep.Counts[want] != n {
			b.Fatalf("%d of %d steps %s: %v", rep.Counts[want], n, want, rep.Counts)
		}
	}
	b.StopTimer()
	if e != nil && !cached {
		e.db.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/step")
	// Weir's CPU time (not its programs'): steadier than wall time on a
	// busy machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/step")
}

// instant is a backend whose tasks succeed at once without a process, so a
// benchmark measures Weir's own work per step.
type instant struct {
	backend.NoServices
	mu  sync.Mutex
	seq int
}

func (*instant) Lower(context.Context, *schema.Step) (json.RawMessage, error) { return nil, nil }

func (*instant) Describe(context.Context) (*backend.Description, error) {
	return &backend.Description{Name: "instant"}, nil
}

func (i *instant) Submit(_ context.Context, t *backend.Task) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seq++
	return strconv.Itoa(i.seq), nil
}

func (*instant) Watch(_ context.Context, _ string, fn func(backend.Event)) (*backend.Result, error) {
	return &backend.Result{State: backend.StateSucceeded}, nil
}

func (*instant) Cancel(context.Context, string, time.Duration) error { return nil }

// LeftRunning: an instant task leaves nothing behind, so work folders are
// recycled as with the local backend.
func (*instant) LeftRunning(string) bool { return false }
