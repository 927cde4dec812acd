// Command measure runs the executor benchmark (testdata/bench/run-exec.sh):
// n no-op steps in a DAG of width w, applied by weir and by make -j2 in the
// same rounds, plus a plain loop spawning the same programs, the fully
// cached re-apply, weir plan, a re-apply that reuses every step but one in
// the executor, and an apply with a fresh state whose spec evaluation is
// cached (the executor's cost without the spec's first evaluation). Each round runs every command once, in turn, so a
// busy machine slows them all alike; the table gives the median and the
// best of the rounds, and the ratios of the medians.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"weir.dev/weir/testdata/bench/exec/execgen"
)

func main() {
	weir := flag.String("weir", "bin/weir", "weir binary")
	base := flag.String("base", "", "a second weir binary (an earlier build) measured in the same rounds, for comparison")
	n := flag.Int("n", 10000, "steps")
	w := flag.Int("w", 100, "width of the DAG")
	runs := flag.Int("runs", 3, "rounds")
	par := flag.Int("parallelism", 2, "make -j and weir --parallelism")
	dir := flag.String("dir", "", "project folder (default: a new temporary folder)")
	plugin := flag.Bool("plugin", true, "also apply and plan with the local backend served as a plugin process (the protocol's cost)")
	flag.Parse()
	if err := run(*weir, *base, *n, *w, *runs, *par, *dir, *plugin); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall time.Duration
	cpu  time.Duration // user + system of the process and its children
	exec time.Duration // weir's "Apply complete ... in D": the executor alone
	// switches counts the context switches of the process and its
	// children, voluntary and not: every time one of them gave up or lost
	// a processor. Go's runtime wakes its threads far more often than
	// make; on a machine whose cores the steps keep busy, each wake takes
	// a core from a step.
	switches int64
}

type series struct {
	name    string
	samples []sample
}

func (s *series) median() sample {
	ss := append([]sample(nil), s.samples...)
	sort.Slice(ss, func(i, j int) bool { return ss[i].wall < ss[j].wall })
	return ss[len(ss)/2]
}

func (s *series) best() sample {
	b := s.samples[0]
	for _, x := range s.samples[1:] {
		if x.wall < b.wall {
			b = x
		}
	}
	return b
}

func run(weir, base string, n, w, runs, par int, dir string, plugin bool) error {
	weir, err := filepath.Abs(weir)
	if err != nil {
		return err
	}
	if base != "" {
		if base, err = filepath.Abs(base); err != nil {
			return err
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "weir-exec-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if err := execgen.Write(dir, n, w); err != nil {
		return err
	}
	if _, err := exec.LookPath("make"); err != nil {
		return fmt.Errorf("make is not installed: %w", err)
	}
	first := execgen.Name(0, n)
	p := strconv.Itoa(par)
	var (
		makeS   = &series{name: fmt.Sprintf("make -j%d", par)}
		cold    = &series{name: "weir apply, cold (no .weir)"}
		fresh   = &series{name: "weir apply, fresh state, evaluation cached"}
		spawn1  = &series{name: "spawn loop, 1 at a time"}
		spawn2  = &series{name: fmt.Sprintf("spawn loop, %d at a time", par)}
		spawnX  = &series{name: fmt.Sprintf("os/exec loop, %d at a time", par)}
		cached  = &series{name: "weir apply, all cached (nothing to run)"}
		plan    = &series{name: "weir plan, all cached"}
		replace = &series{name: fmt.Sprintf("weir apply -replace %s (%d reused)", first, n-2)}

		plugFresh  = &series{name: "plugin: weir apply, fresh state"}
		plugCached = &series{name: "plugin: weir apply, all cached"}
		plugPlan   = &series{name: "plugin: weir plan, all cached"}

		baseCold    = &series{name: "base: weir apply, cold"}
		baseFresh   = &series{name: "base: weir apply, fresh state"}
		baseCached  = &series{name: "base: weir apply, all cached"}
		basePlan    = &series{name: "base: weir plan, all cached"}
		baseReplace = &series{name: "base: weir apply -replace " + first}
	)
	applyArgs := []string{"apply", "--auto-approve", "--parallelism", p, dir}
	for round := 1; round <= runs; round++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", round, runs)
		if err := timed(makeS, dir, "make", "-s", "-j"+p, "-C", dir); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(dir, ".weir")); err != nil {
			return err
		}
		if err := timed(cold, dir, weir, applyArgs...); err != nil {
			return err
		}
		if err := timed(cached, dir, weir, applyArgs...); err != nil {
			return err
		}
		if err := timed(plan, dir, weir, "plan", dir); err != nil {
			return err
		}
		if err := timed(replace, dir, weir, append([]string{"apply", "--auto-approve", "--parallelism", p, "--replace", "tasks." + first}, dir)...); err != nil {
			return err
		}
		if err := freshState(dir); err != nil {
			return err
		}
		if err := timed(fresh, dir, weir, applyArgs...); err != nil {
			return err
		}
		if plugin {
			// The same applies with the local backend out of process:
			// every step crosses the plugin protocol.
			env := append(os.Environ(), "WEIR_BUILTIN_BACKENDS=plugin")
			if err := timedIn(plugPlan, dir, env, weir, "plan", dir); err != nil {
				return err
			}
			if err := timedIn(plugCached, dir, env, weir, applyArgs...); err != nil {
				return err
			}
			if err := freshState(dir); err != nil {
				return err
			}
			if err := timedIn(plugFresh, dir, env, weir, applyArgs...); err != nil {
				return err
			}
		}
		if base != "" {
			if err := os.RemoveAll(filepath.Join(dir, ".weir")); err != nil {
				return err
			}
			if err := timed(baseCold, dir, base, applyArgs...); err != nil {
				return err
			}
			if err := timed(baseCached, dir, base, applyArgs...); err != nil {
				return err
			}
			if err := timed(basePlan, dir, base, "plan", dir); err != nil {
				return err
			}
			if err := timed(baseReplace, dir, base, append([]string{"apply", "--auto-approve", "--parallelism", p, "--replace", "tasks." + first}, dir)...); err != nil {
				return err
			}
			if err := freshState(dir); err != nil {
				return err
			}
			if err := timed(baseFresh, dir, base, applyArgs...); err != nil {
				return err
			}
		}
		spawn1.samples = append(spawn1.samples, spawnLoop(n, 1, false))
		spawn2.samples = append(spawn2.samples, spawnLoop(n, par, false))
		spawnX.samples = append(spawnX.samples, spawnLoop(n, par, true))
	}

	mk := makeS.median().wall
	fmt.Printf("\nexecutor benchmark: %d no-op steps (true <i>), DAG of width %d, parallelism %d, %d rounds\n\n", n, w, par, runs)
	fmt.Printf("%-46s %10s %10s %10s %10s %8s %10s\n", "", "median", "best", "CPU", "executor", "ratio", "switches")
	row := func(s *series, ratio string) {
		m, b := s.median(), s.best()
		ex := ""
		if m.exec > 0 {
			ex = secs(m.exec)
		}
		fmt.Printf("%-46s %10s %10s %10s %10s %8s %10s\n", s.name, secs(m.wall), secs(b.wall), secs(m.cpu), ex, ratio,
			fmt.Sprintf("%.1f", float64(m.switches)/float64(n)))
	}
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2fx", float64(a)/float64(b)) }
	row(makeS, "1.00x")
	row(cold, ratio(cold.median().wall, mk))
	row(fresh, ratio(fresh.median().wall, mk))
	if base != "" {
		row(baseCold, ratio(baseCold.median().wall, mk))
		row(baseFresh, ratio(baseFresh.median().wall, mk))
	}
	row(spawn1, ratio(spawn1.median().wall, mk))
	row(spawn2, ratio(spawn2.median().wall, mk))
	row(spawnX, ratio(spawnX.median().wall, mk))
	fmt.Println()
	pl := plan.median().wall
	row(plan, "1.00x")
	row(cached, ratio(cached.median().wall, pl))
	row(replace, ratio(replace.median().wall, pl))
	if plugin {
		fmt.Println()
		row(plugFresh, ratio(plugFresh.median().wall, fresh.median().wall))
		row(plugCached, ratio(plugCached.median().wall, cached.median().wall))
		row(plugPlan, ratio(plugPlan.median().wall, pl))
	}
	if base != "" {
		bpl := basePlan.median().wall
		row(basePlan, "1.00x")
		row(baseCached, ratio(baseCached.median().wall, bpl))
		row(baseReplace, ratio(baseReplace.median().wall, bpl))
	}
	fmt.Println()
	fmt.Printf("ratios: cold and fresh-state apply vs make -j%d; cached apply vs plan (medians)\n", par)
	if plugin {
		fmt.Printf("        plugin rows vs the same command in-process\n")
	}
	fmt.Printf("weir's overhead per step (cold apply - make) / n: %s\n", perStep(cold.median().wall-mk, n))
	fmt.Printf("  of which planning (cold apply - executor):        %s\n", perStep(cold.median().wall-cold.median().exec, n))
	fmt.Printf("  executor alone (executor - make):                 %s\n", perStep(cold.median().exec-mk, n))
	fmt.Printf("fresh state (fresh apply - make) / n:             %s\n", perStep(fresh.median().wall-mk, n))
	fmt.Printf("  of which planning (fresh apply - executor):       %s\n", perStep(fresh.median().wall-fresh.median().exec, n))
	fmt.Printf("  executor alone (executor - make):                 %s\n", perStep(fresh.median().exec-mk, n))
	fmt.Printf("CPU per step beyond make's (fresh apply - make):    %s\n", perStep(fresh.median().cpu-makeS.median().cpu, n))
	if base != "" {
		fmt.Printf("base: weir's overhead per step:                     %s\n", perStep(baseCold.median().wall-mk, n))
		fmt.Printf("  base: executor alone (executor - make):           %s\n", perStep(baseCold.median().exec-mk, n))
		fmt.Printf("base: fresh state (fresh apply - make) / n:         %s\n", perStep(baseFresh.median().wall-mk, n))
		fmt.Printf("base: CPU per step beyond make's:                   %s\n", perStep(baseFresh.median().cpu-makeS.median().cpu, n))
	}
	fmt.Printf("spawn cost per process, 1 at a time:                %s\n", perStep(spawn1.median().wall, n))
	// Round by round, with each run's context switches per step: a calm
	// run (about 5) takes about make's time, a stormy one (8 and more)
	// longer; the medians above mix the two (see ../../README.md, "Calm
	// and stormy runs").
	fmt.Println()
	fmt.Println("round by round, ratio to make -j" + p + " in the same round (context switches per step):")
	for _, s := range []*series{cold, fresh} {
		fmt.Printf("  %-44s", s.name)
		for i, x := range s.samples {
			fmt.Printf(" %.2fx (%.1f)", float64(x.wall)/float64(makeS.samples[i].wall), float64(x.switches)/float64(n))
		}
		fmt.Println()
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func perStep(d time.Duration, n int) string {
	return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n))
}

var execTime = regexp.MustCompile(`Apply complete: .* in ([0-9.]+[a-zµ]+)\. Run`)

// timed runs a command and adds its wall and CPU time to s. The command's
// output is kept only to read weir's executor time and to show on failure.
func timed(s *series, dir, name string, args ...string) error {
	return timedIn(s, dir, nil, name, args...)
}

// timedIn is timed with the environment env (nil: this process's).
func timedIn(s *series, dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := os.CreateTemp("", "measure-out-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	text, _ := os.ReadFile(out.Name())
	if err != nil {
		tail := text
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, tail)
	}
	smp := sample{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		smp.switches = ru.Nvcsw + ru.Nivcsw
	}
	if m := execTime.FindSubmatch(text); m != nil {
		smp.exec, _ = time.ParseDuration(string(m[1]))
	}
	s.samples = append(s.samples, smp)
	return nil
}

// freshState removes the state, the runs' folders and the artifacts of
// the project in dir, keeping the cached evaluation of its spec: every
// step runs again, as after a fresh clone of a project whose spec has
// been evaluated once.
func freshState(dir string) error {
	w := filepath.Join(dir, ".weir")
	for _, p := range []string{"state.db", "state.db-wal", "state.db-shm", "runs", "artifacts"} {
		if err := os.RemoveAll(filepath.Join(w, p)); err != nil {
			return err
		}
	}
	return nil
}

// spawnLoop starts `true <i>` n times, par at a time, each waited for, with
// stdin and stdout on /dev/null: the cost of the processes alone. It starts
// them as the local backend does (syscall.ForkExec in a new process group,
// then wait4 on the process's ID), or with osExec through os/exec, whose
// handle and checks make the loop about 30% slower here.
func spawnLoop(n, par int, osExec bool) sample {
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	truePath, err := exec.LookPath("true")
	if err != nil {
		panic(err)
	}
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	cpu0, sw0 := usage()
	start := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if osExec {
					cmd := exec.Command(truePath, strconv.Itoa(i))
					cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
					if err := cmd.Run(); err != nil {
						panic(err)
					}
					continue
				}
				fd := devnull.Fd()
				pid, err := syscall.ForkExec(truePath, []string{truePath, strconv.Itoa(i)}, &syscall.ProcAttr{
					Files: []uintptr{fd, fd, fd},
					Sys:   &syscall.SysProcAttr{Setpgid: true},
				})
				if err != nil {
					panic(err)
				}
				var ws syscall.WaitStatus
				for {
					if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, sw1 := usage()
	return sample{wall: wall, cpu: cpu1 - cpu0, switches: sw1 - sw0}
}

// usage is the CPU time and the context switches of this process and its
// waited-for children.
func usage() (time.Duration, int64) {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime),
		self.Nvcsw + self.Nivcsw + kids.Nvcsw + kids.Nivcsw
}
