package k8stest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBin makes a folder of stand-ins for the binaries: etcd runs script,
// the others exit at once.
func fakeBin(t *testing.T, etcdScript string) string {
	t.Helper()
	bin := t.TempDir()
	for _, n := range []string{apiserverName, cmName, schedName, kwokName} {
		if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, etcdName), []byte("#!/bin/sh\n"+etcdScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, kwokStages), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestUpReportsADaemonThatExits(t *testing.T) {
	bin := fakeBin(t, "echo 'etcd: cannot bind, giving up' >&2\nexit 3\n")
	dir := t.TempDir()
	_, err := Up(t.Context(), bin, dir)
	if err == nil || !strings.Contains(err.Error(), "etcd exited") || !strings.Contains(err.Error(), "cannot bind, giving up") {
		t.Fatalf("Up: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd.pid")); err == nil {
		t.Error("etcd.pid left behind")
	}
}

func TestUpTimesOutAndStopsWhatItStarted(t *testing.T) {
	bin := fakeBin(t, "echo 'etcd: starting'\nsleep 601.25\n")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := Up(ctx, bin, dir)
	if err == nil || !strings.Contains(err.Error(), "etcd /health") || !strings.Contains(err.Error(), "etcd: starting") {
		t.Fatalf("Up: %v", err)
	}
	// The script and its sleep are gone (Down signals the process group).
	// The signal has been sent when Up returns; a child of the group may
	// take a moment more to die on a busy machine.
	left := func() []string {
		var out []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && (strings.Contains(string(b), bin) || strings.Contains(string(b), "601.25")) {
				stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
				if !strings.Contains(string(stat), ") Z") {
					out = append(out, fmt.Sprintf("pid %s: %q", e.Name(), b))
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(left()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if l := left(); len(l) > 0 {
		t.Errorf("still running 5s after Up gave up: %s", strings.Join(l, "; "))
	}
}

func TestUpNamesAMissingBinary(t *testing.T) {
	bin := fakeBin(t, "exit 0\n")
	os.Remove(filepath.Join(bin, kwokName))
	_, err := Up(t.Context(), bin, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "lacks kwok") || !strings.Contains(err.Error(), "hack/k8s/build.sh") {
		t.Fatalf("Up: %v", err)
	}
}

func TestAttachWithoutCluster(t *testing.T) {
	if _, err := Attach(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no cluster in") {
		t.Fatalf("Attach: %v", err)
	}
}
