// Command cluster starts and stops the kubernetes backend's test cluster
// (package internal/k8stest) for make test-k8s and for trying things by hand:
//
//	go run ./hack/k8s/cluster up -bin "$(hack/k8s/build.sh)" -dir RUNDIR
//	KUBECONFIG=RUNDIR/admin.kubeconfig kubectl get nodes
//	go run ./hack/k8s/cluster status -dir RUNDIR
//	go run ./hack/k8s/cluster down -dir RUNDIR [-wipe]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"weir.dev/weir/internal/k8stest"
)

func main() { os.Exit(run(os.Args[1:])) }

const usage = `usage:
  cluster up -bin BINDIR -dir RUNDIR [-timeout 3m]   start a cluster, print its kubeconfig
  cluster status -dir RUNDIR                         PIDs, resident memory, readiness
  cluster down -dir RUNDIR [-wipe]                   stop it (and remove RUNDIR)
`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("cluster "+args[0], flag.ContinueOnError)
	bin := fs.String("bin", "", "folder of the binaries (hack/k8s/build.sh prints it)")
	dir := fs.String("dir", "", "the cluster's folder")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up starting after this long")
	wipe := fs.Bool("wipe", false, "down: remove the folder afterwards")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprint(os.Stderr, "-dir is required\n"+usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "up":
		if *bin == "" {
			fmt.Fprint(os.Stderr, "-bin is required\n"+usage)
			return 2
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		start := time.Now()
		c, err := k8stest.Up(ctx, *bin, *dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "cluster up in %.1fs (%s)\n", time.Since(start).Seconds(), c.Server)
		printRSS(c)
		fmt.Printf("KUBECONFIG=%s\n", c.Kubeconfig)
	case "status":
		c, err := k8stest.Attach(*dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pids := c.PIDs()
		names := make([]string, 0, len(pids))
		for n := range pids {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			state := "stopped"
			if c.Running(n) {
				state = "running"
			}
			fmt.Printf("%-24s pid %-7d %s\n", n, pids[n], state)
		}
		printRSS(c)
		if err := c.Ready(ctx); err != nil {
			fmt.Println("not ready:", err)
			return 1
		}
		fmt.Printf("ready: %s\nKUBECONFIG=%s\n", c.Server, c.Kubeconfig)
	case "down":
		c, err := k8stest.Attach(*dir)
		if err != nil {
			if *wipe {
				os.RemoveAll(*dir)
			}
			fmt.Fprintln(os.Stderr, err)
			return 0 // nothing to stop
		}
		if err := c.Down(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if *wipe {
			if err := os.RemoveAll(*dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	default:
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	return 0
}

func printRSS(c *k8stest.Cluster) {
	m, err := c.RSS()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		return
	}
	var total int64
	names := make([]string, 0, len(m))
	for n, v := range m {
		names = append(names, n)
		total += v
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-24s %4d MiB\n", n, m[n]>>20)
	}
	fmt.Fprintf(os.Stderr, "  %-24s %4d MiB\n", "control plane RSS", total>>20)
}
