package docker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
	wexec "weir.dev/weir/runtime/exec"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// noopSteps is how many no-op steps one measure runs.
const noopSteps = 100

// BenchmarkNoopSteps runs 100 no-op steps of one image through the
// executor on the Docker backend, one at a time and two at a time, and a
// shell loop of `docker run --rm` of the same image with the same settings
// (--init, no network), in the same run: ten rounds of ten steps of each,
// their order turning each round, so that a machine whose load drifts (a
// shared one) weighs on all three alike. It reports each in seconds per 100
// steps, the ratios to the loop, and the time per step. Run it with
// testdata/bench/run-docker.sh (-benchtime=1x).
func BenchmarkNoopSteps(b *testing.B) {
	be := newBackend(b, docker.Options{Project: "bench"})
	img := stepImage(b, be)
	ctx := context.Background()
	// Warm the engine and the image cache once.
	if out, err := exec.Command("docker", "run", "--rm", "--init", "--network", "none", img, "step", "noop").CombinedOutput(); err != nil {
		b.Fatalf("docker run: %v\n%s", err, out)
	}
	const rounds = 10
	per := noopSteps / rounds
	loop := func() time.Duration {
		t0 := time.Now()
		script := fmt.Sprintf(`for i in $(seq %d); do docker run --rm --init --network none %s step noop || exit 1; done`, per, img)
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("the docker run loop: %v\n%s", err, out)
		}
		return time.Since(t0)
	}
	var total [3]time.Duration // loop, sequential, parallelism 2
	measures := []func() time.Duration{
		loop,
		func() time.Duration { return applyNoops(b, ctx, be, img, per, 1) },
		func() time.Duration { return applyNoops(b, ctx, be, img, per, 2) },
	}
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for k := range measures {
				m := (k + r) % len(measures)
				total[m] += measures[m]()
			}
		}
	}
	n := float64(b.N)
	loopS, seqS, par2S := total[0].Seconds()/n, total[1].Seconds()/n, total[2].Seconds()/n
	b.ReportMetric(loopS, "loop-s")
	b.ReportMetric(seqS, "seq-s")
	b.ReportMetric(par2S, "par2-s")
	b.ReportMetric(seqS/loopS, "seq/loop")
	b.ReportMetric(par2S/loopS, "par2/loop")
	b.ReportMetric(loopS*1000/noopSteps, "loop-ms/step")
	b.ReportMetric(seqS*1000/noopSteps, "seq-ms/step")
}

// applyNoops applies a plan of n independent no-op steps in a fresh
// project and returns how long the apply took.
func applyNoops(b *testing.B, ctx context.Context, be backend.Interface, img string, n, parallelism int) time.Duration {
	b.Helper()
	dir := b.TempDir()
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store, err := artifact.Open(filepath.Join(dir, ".weir", "artifacts"))
	if err != nil {
		b.Fatal(err)
	}
	p := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "bench"}
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("tasks.noop[%d]", i)
		p.Steps = append(p.Steps, &schema.Step{Address: addr, Kind: "task", Element: "tasks.noop", Backend: "docker",
			Action: schema.ActionRun, Run: &schema.StepRun{Image: img, Command: []string{"step", "noop"}},
			CacheKey: schema.CacheKey(map[string]string{"address": addr})})
	}
	t0 := time.Now()
	rep, err := wexec.Apply(ctx, p, wexec.Options{ProjectDir: dir, WorkRoot: filepath.Join(dir, ".weir", "runs"),
		State: db, Store: store, Backends: map[string]backend.Interface{"docker": be}, Parallelism: parallelism,
		BaseEnv: map[string]string{"PATH": os.Getenv("PATH")}, RunID: fmt.Sprintf("bench-%d-%d", parallelism, time.Now().UnixNano())})
	d := time.Since(t0)
	if err != nil {
		for _, s := range rep.Steps {
			if s.Status != state.StatusSucceeded {
				b.Fatalf("%s: %s", s.Address, s.Message)
			}
		}
		b.Fatal(err)
	}
	return d
}
