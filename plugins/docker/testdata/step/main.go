// Command step is the step program of the docker backend's tests: built as
// a static binary, packaged into an image with go-containerregistry, and
// run both as a local process and in containers. Its first argument picks
// what it does; what it writes depends only on its inputs and parameters,
// never on paths, so both backends give the same output digests.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: step io|contract|fail|sleep|oom|noop|code")
	}
	switch os.Args[1] {
	case "noop":
	case "io":
		doIO()
	case "contract":
		contract()
	case "fail":
		fmt.Println("step: starting")
		fmt.Fprintln(os.Stderr, "step: something went wrong")
		os.Exit(3)
	case "sleep":
		d := time.Minute
		if len(os.Args) > 2 {
			d, _ = time.ParseDuration(os.Args[2])
		}
		fmt.Println("sleeping", d)
		time.Sleep(d)
	case "oom":
		var keep [][]byte
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
			if i%16 == 0 {
				fmt.Println("allocated MiB:", i)
			}
		}
	case "code":
		b, err := os.ReadFile("message.txt")
		check(err)
		write(os.Getenv("WEIR_OUTPUT_OUT"), b)
	default:
		fail("unknown mode " + os.Args[1])
	}
}

// doIO writes every output from the parameters and the inputs, and one
// metric line.
func doIO() {
	var params map[string]any
	if p := os.Getenv("WEIR_PARAMS"); p != "" {
		b, err := os.ReadFile(p)
		check(err)
		check(json.Unmarshal(b, &params))
	}
	ins := vars("WEIR_INPUT_")
	h := sha256.New()
	pj, _ := json.Marshal(params)
	h.Write(pj)
	total := 0
	for _, k := range ins {
		b, err := os.ReadFile(os.Getenv("WEIR_INPUT_" + k))
		check(err)
		total += len(b)
		fmt.Fprintf(h, "%s=%d:", k, len(b))
		h.Write(b)
	}
	sum := fmt.Sprintf("%x", h.Sum(nil))
	outs := vars("WEIR_OUTPUT_")
	for _, k := range outs {
		write(os.Getenv("WEIR_OUTPUT_"+k), []byte(fmt.Sprintf("output %s\nparams %s\ninputs %d bytes\nsum %s\n", k, pj, total, sum)))
	}
	metrics(map[string]any{"inputs": len(ins), "bytes": total})
	fmt.Printf("io: read %d inputs, wrote %d outputs\n", len(ins), len(outs))
	fmt.Fprintln(os.Stderr, "io: done")
}

// contract reports what the step sees of its environment.
func contract() {
	var lines []string
	add := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	wd, _ := os.Getwd()
	add("cwd %s", wd)
	for _, k := range []string{"HOME", "TMPDIR", "WEIR_METRICS", "WEIR_PARAMS", "WEIR_STEP", "WEIR_RUN_ID"} {
		add("%s=%s", k, os.Getenv(k))
	}
	for _, k := range vars("WEIR_INPUT_") {
		p := os.Getenv("WEIR_INPUT_" + k)
		add("WEIR_INPUT_%s=%s", k, p)
		err := os.WriteFile(p, []byte("changed"), 0o644)
		add("input %s writable: %v", k, err == nil)
	}
	for _, k := range vars("WEIR_OUTPUT_") {
		add("WEIR_OUTPUT_%s=%s", k, os.Getenv("WEIR_OUTPUT_"+k))
	}
	err := os.WriteFile(os.Getenv("TMPDIR")+"/scratch", []byte("x"), 0o644)
	add("tmp writable: %v", err == nil)
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	add("interfaces %s", strings.Join(names, ","))
	report := strings.Join(lines, "\n") + "\n"
	fmt.Print(report)
	if p := os.Getenv("WEIR_OUTPUT_REPORT"); p != "" {
		write(p, []byte(report))
	}
	metrics(map[string]any{"checked": len(lines)})
}

func vars(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, prefix) {
			out = append(out, strings.TrimPrefix(k, prefix))
		}
	}
	sort.Strings(out)
	return out
}

func metrics(m map[string]any) {
	p := os.Getenv("WEIR_METRICS")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	check(err)
	b, _ := json.Marshal(m)
	_, err = f.Write(append(b, '\n'))
	check(err)
	check(f.Close())
}

func write(p string, b []byte) {
	if p == "" {
		fail("no output path")
	}
	check(os.WriteFile(p, b, 0o644))
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "step:", msg)
	os.Exit(2)
}
