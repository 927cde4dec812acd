package host_test

import (
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/host"
	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

// The protocol's cost, measured four ways:
//
//   - BenchmarkNoop1000: 1,000 no-op steps (`true <i>`, a DAG of width 100,
//     2 at a time, a real state file and artifact store) applied through the
//     local backend in-process, then through the same backend served as a
//     plugin process, in the same run. It reports both times per step, their
//     ratio (the goal is at most 1.2) and the difference per step.
//   - BenchmarkRoundTrip: Submit and Watch of a task that ends at once,
//     in-process and over the protocol: the protocol's own cost per step.
//   - BenchmarkFloor: the same spawns with nothing of Weir's (or only its
//     local backend), in-process and through a bare Go process, in three
//     ways: the floor under any plugin's cost here.
//   - BenchmarkExchange: one byte to a bare Go process and back, read where
//     it is written, and handed to another goroutine on both sides as the
//     protocol does (a reader per stream, a goroutine per task): what this
//     machine charges for the round trip and for each handoff.
//
// Run them (make bench does) with
//
//	go test ./plugins/host -run '^$' -bench Noop1000 -benchtime 3x
//	go test ./plugins/host -run '^$' -bench RoundTrip -benchtime 2000x
//	go test ./plugins/host -run '^$' -bench Floor -benchtime 5x
//	go test ./plugins/host -run '^$' -bench Exchange -benchtime 20000x
//
// (the CPU time comes from /proc in ticks of 10 ms: a few round trips
// read as none).

// BenchmarkFloor measures the least that running steps in another Go
// process costs on this machine, with nothing of Weir's but, in one mode,
// its local backend: 2 goroutines running `true` and waiting for it, in
// this process, against the same goroutines each asking a bare Go process
// over a Unix socket to do it (one byte each way per step). The bare
// process runs it with os/exec in a goroutine started for each request
// ("handoff", as a plugin serving a stream of tasks does), with os/exec in
// the goroutine that read it ("direct": one connection per spawner, no
// goroutine handoff at all), or with the local backend's Submit and Watch
// in the goroutine that read it ("backend", and this process runs it on
// the local backend too). Their µs/step-overhead and ratio are the floor
// under BenchmarkNoop1000's and TestSpeed's.
func BenchmarkFloor(b *testing.B) {
	for _, mode := range []string{"handoff", "direct", "backend"} {
		b.Run(mode, func(b *testing.B) { floor(b, mode) })
	}
}

func floor(b *testing.B, mode string) {
	const n = 500
	_, dial := startBare(b, "floor-"+mode)
	conns := [2]net.Conn{dial(), dial()}
	both := func(step func(w int)) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for range n / 2 {
					step(w)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	in := func(int) { spawnTrue() }
	if mode == "backend" {
		be, dir := local.New(0), b.TempDir()
		in = func(int) {
			if err := runTrue(be, dir); err != nil {
				b.Error(err)
			}
		}
	}
	out := func(w int) {
		buf := []byte{1}
		if _, err := conns[w].Write(buf); err != nil {
			b.Error(err)
		}
		if _, err := conns[w].Read(buf); err != nil {
			b.Error(err)
		}
	}
	var tin, tout time.Duration
	for b.Loop() {
		tin += both(in)
		tout += both(out)
	}
	perIn := float64(tin.Microseconds()) / float64(b.N*n)
	perOut := float64(tout.Microseconds()) / float64(b.N*n)
	b.ReportMetric(perIn, "µs/step-in-process")
	b.ReportMetric(perOut, "µs/step-other-process")
	b.ReportMetric(perOut-perIn, "µs/step-overhead")
	b.ReportMetric(perOut/perIn, "ratio")
}

// BenchmarkExchange sends one byte to a bare Go process, which sends it
// back, one exchange at a time: "direct" reads each reply in the goroutine
// that wrote the request, and the other process answers in the goroutine
// that read it; "handoff" passes each message from the goroutine that reads
// it to another, on both sides, as Weir's Tasks stream does (the host's
// reader wakes the task's watcher, the plugin's reader starts a goroutine
// for the task). The difference is what two goroutine handoffs cost here,
// in time and in both processes' CPU.
func BenchmarkExchange(b *testing.B) {
	for _, mode := range []string{"direct", "handoff"} {
		b.Run(mode, func(b *testing.B) {
			helper := "echo"
			if mode == "handoff" {
				helper = "echo-handoff"
			}
			pid, dial := startBare(b, helper)
			c := dial()
			defer c.Close()
			var err error
			replies := make(chan error, 1)
			if mode == "handoff" {
				go func() {
					buf := []byte{0}
					for {
						_, err := c.Read(buf)
						replies <- err
						if err != nil {
							return
						}
					}
				}()
			}
			buf := []byte{1}
			cpu0 := cpuTime(os.Getpid()) + cpuTime(pid)
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if mode == "handoff" {
					err = <-replies
				} else {
					_, err = c.Read(buf)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(os.Getpid()) + cpuTime(pid) - cpu0
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/exchange")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/exchange")
		})
	}
}

// serveEcho is BenchmarkExchange's other process: it sends back each byte
// it reads, from the reading goroutine, or with handoff from a goroutine
// started for it.
func serveEcho(sock string, handoff bool) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := l.Accept()
	if err != nil {
		return
	}
	buf := []byte{0}
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
		if !handoff {
			c.Write(buf)
			continue
		}
		go c.Write([]byte{buf[0]})
	}
}

// startBare starts this test binary as the bare Go process of mode
// (serveFloor or serveEcho), killed when b ends, and returns its process ID
// and a function that connects to it.
func startBare(b *testing.B, mode string) (int, func() net.Conn) {
	self, err := os.Executable()
	require.NoError(b, err)
	sock := filepath.Join(b.TempDir(), "bare.sock")
	cmd := osexec.Command(self)
	cmd.Env = append(os.Environ(), pluginEnv+"="+mode, "WEIR_FLOOR_SOCKET="+sock)
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid, func() net.Conn {
		var c net.Conn
		require.Eventually(b, func() bool {
			var err error
			c, err = net.Dial("unix", sock)
			return err == nil
		}, 10*time.Second, 10*time.Millisecond)
		return c
	}
}

// spawnTrue runs `true` and waits for it.
func spawnTrue() {
	cmd := osexec.Command("true")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Run()
}

// serveFloor is BenchmarkFloor's other process: for each byte read, run
// `true`, wait, write the byte back: in a goroutine started for the
// request ("handoff"), in the goroutine that read it ("direct"), or there
// on the local backend ("backend").
func serveFloor(sock string, mode string) {
	be := local.New(0)
	dir := filepath.Dir(sock) // the benchmark's, removed with it
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			var mu sync.Mutex
			for {
				buf := []byte{0}
				if _, err := c.Read(buf); err != nil {
					return
				}
				switch mode {
				case "direct":
					spawnTrue()
					c.Write(buf)
				case "backend":
					if err := runTrue(be, dir); err != nil {
						fmt.Fprintln(os.Stderr, err)
						c.Close() // the benchmark's read fails
						return
					}
					c.Write(buf)
				default:
					go func() {
						spawnTrue()
						mu.Lock()
						c.Write(buf)
						mu.Unlock()
					}()
				}
			}
		}()
	}
}

// runTrue runs `true` on the local backend, in dir, and watches it to its
// end.
func runTrue(be *local.Backend, dir string) error {
	ctx := context.Background()
	id, err := be.Submit(ctx, &backend.Task{Argv: []string{"true"}, Dir: dir, WorkDir: dir, Env: map[string]string{"PATH": "/usr/bin:/bin"}})
	if err != nil {
		return err
	}
	res, err := be.Watch(ctx, id, nil)
	if err == nil && res.State != backend.StateSucceeded {
		err = fmt.Errorf("true: %s", res.Message)
	}
	return err
}

// noopPlan is n steps `true <i>`, step i needing step i-w.
func noopPlan(n, w int) *schema.Plan {
	p := &schema.Plan{FormatVersion: schema.PlanFormatVersion, Project: "bench"}
	name := func(i int) string { return fmt.Sprintf("tasks.t%05d", i) }
	for i := 0; i < n; i++ {
		s := &schema.Step{Address: name(i), Kind: "task", Element: name(i), Backend: "local", Action: schema.ActionRun,
			Run:      &schema.StepRun{Command: []string{"true", strconv.Itoa(i)}},
			CacheKey: fmt.Sprintf("sha256:%064x", i+1)}
		if i >= w {
			s.Needs = []string{name(i - w)}
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

// timeApply applies the plan in a fresh project and returns how long it took.
func timeApply(b testing.TB, plan *schema.Plan, be backend.Interface) time.Duration {
	p := newProject(b)
	start := time.Now()
	rep, err := p.apply(b, plan, map[string]backend.Interface{"local": be}, speedParallelism(), false)
	d := time.Since(start)
	require.NoError(b, err)
	if rep.Counts[state.StatusSucceeded] != len(plan.Steps) {
		b.Fatalf("%d of %d steps succeeded", rep.Counts[state.StatusSucceeded], len(plan.Steps))
	}
	return d
}

func BenchmarkNoop1000(b *testing.B) {
	const n = 1000
	plan := noopPlan(n, 100)
	plugin := mustOpen(b, "local", host.Options{})
	in := local.New(0)
	var tin, tout time.Duration
	for b.Loop() {
		tin += timeApply(b, plan, in)
		tout += timeApply(b, plan, plugin)
	}
	perIn := float64(tin.Microseconds()) / float64(b.N*n)
	perOut := float64(tout.Microseconds()) / float64(b.N*n)
	b.ReportMetric(perIn, "µs/step-in-process")
	b.ReportMetric(perOut, "µs/step-plugin")
	b.ReportMetric(perOut/perIn, "ratio")
	b.ReportMetric(perOut-perIn, "µs/step-overhead")
}

func BenchmarkRoundTrip(b *testing.B) {
	plugin := mustOpen(b, "instant", host.Options{})
	for _, c := range []struct {
		name string
		be   backend.Interface
		pid  int
	}{{"in-process", &instant{}, 0}, {"plugin", plugin, plugin.Pid()}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			t := &backend.Task{RunID: "r", Step: "tasks.x", Argv: []string{"true"}, Env: map[string]string{"PATH": "/bin"}}
			cpu0 := cpuTime(os.Getpid()) + cpuTime(c.pid)
			for b.Loop() {
				id, err := c.be.Submit(ctx, t)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.be.Watch(ctx, id, nil); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime(os.Getpid()) + cpuTime(c.pid) - cpu0
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/step")
			// The CPU both processes spent per step: the protocol's cost on
			// a machine whose cores are free (elapsed time also counts the
			// waits for a core when they are not).
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/step")
		})
	}
}

// cpuTime is the CPU time (user and system) a process has used so far, from
// /proc (0 where there is none).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	// Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks of
	// 1/100 s; procStat starts at field 3.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// speedParallelism is how many steps the speed benchmarks run at a time:
// WEIR_SPEED_PARALLELISM, default 2 (the setting, as many as this
// machine has cores). Fewer than the cores shows the protocol's cost on a
// machine with a core to spare for it.
func speedParallelism() int {
	if n, err := strconv.Atoi(os.Getenv("WEIR_SPEED_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 2
}

// TestSpeed applies 1,000 no-op steps in-process and through the plugin,
// alternately, rounds times (WEIR_SPEED_ROUNDS, default 5), and fails if the
// plugin's total is more than 1.2 times the in-process one. Timing on a
// shared machine is noisy, so it runs only when WEIR_SPEED_TEST=1 (CI
// machines of their own, and the note's figures).
func TestSpeed(t *testing.T) {
	if os.Getenv("WEIR_SPEED_TEST") != "1" {
		t.Skip("set WEIR_SPEED_TEST=1 to measure")
	}
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("WEIR_SPEED_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	plan := noopPlan(1000, 100)
	plugin := mustOpen(t, "local", host.Options{})
	in := local.New(0)
	timeApply(t, plan, in) // warm up caches and the page cache
	timeApply(t, plan, plugin)
	var tin, tout, cin, cout time.Duration
	var ratios []float64
	cpu := func() time.Duration { return processCPU(os.Getpid()) + processCPU(plugin.Pid()) }
	for i := 0; i < rounds; i++ {
		c0 := cpu()
		a := timeApply(t, plan, in)
		c1 := cpu()
		b := timeApply(t, plan, plugin)
		c2 := cpu()
		tin, tout, cin, cout = tin+a, tout+b, cin+c1-c0, cout+c2-c1
		ratios = append(ratios, float64(b)/float64(a))
		t.Logf("round %d: in-process %v, plugin %v, ratio %.3f", i+1, a.Round(time.Millisecond), b.Round(time.Millisecond), float64(b)/float64(a))
	}
	sort.Float64s(ratios)
	ratio := float64(tout) / float64(tin)
	n := float64(1000 * rounds)
	t.Logf("1000 no-op steps, %d rounds: in-process %v, plugin %v per run; ratio %.3f (median of rounds %.3f); overhead %.0f µs/step; CPU %.0f and %.0f µs/step",
		rounds, tin/time.Duration(rounds), tout/time.Duration(rounds), ratio, ratios[len(ratios)/2],
		float64((tout-tin).Microseconds())/n, float64(cin.Microseconds())/n, float64(cout.Microseconds())/n)
	if ratio > 1.2 {
		t.Errorf("the out-of-process backend is %.2f times slower than in-process (goal: at most 1.2)", ratio)
	}
}

// processCPU is the CPU time a process and the children it waited for have
// used so far (the steps' processes included), from /proc.
func processCPU(pid int) time.Duration {
	f := procStat(pid)
	if pid == 0 || len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
