package k8stest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Environment variables Get and Private read.
const (
	// EnvDir names the folder of a running cluster (make test-k8s sets it).
	EnvDir = "WEIR_K8S_DIR"
	// EnvSkip, when not empty, makes Get skip even under CI=true: .ci/run
	// sets it for `make test` because `make test-k8s` runs the cluster
	// tests right after.
	EnvSkip = "WEIR_K8S_SKIP"
)

// howTo is what a skipped test says.
const howTo = "make test-k8s: builds the control plane once per machine (~25 min), then starts it " +
	"(or set " + EnvDir + " to the folder of a cluster `go run ./hack/k8s/cluster up` started)"

var (
	attachMu sync.Mutex
	attached = map[string]*Cluster{}
)

// Get returns the running cluster for a test: the one in the folder
// WEIR_K8S_DIR names (make test-k8s starts it and sets the variable),
// attached once per test binary and checked to answer. Without
// WEIR_K8S_DIR the test is skipped with a message saying how to run it,
// except under CI=true, where it fails, unless WEIR_K8S_SKIP is set.
//
// The cluster is shared by every test package make test-k8s runs, in
// parallel: create objects in a namespace of your own (Namespace), compare
// RequestCounts before and after rather than from zero, and do not restart
// or stop it (use Private for that).
func Get(t testing.TB) *Cluster {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		if os.Getenv(EnvSkip) == "" && os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is not set: run the cluster tests with %s", EnvDir, howTo)
		}
		t.Skip("needs a Kubernetes test cluster; run " + howTo)
	}
	attachMu.Lock()
	c, ok := attached[dir]
	if !ok {
		var err error
		if c, err = Attach(dir); err != nil {
			attachMu.Unlock()
			t.Fatalf("%s=%s: %v", EnvDir, dir, err)
		}
		attached[dir] = c
	}
	attachMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("%s=%s: the cluster does not answer: %v", EnvDir, dir, err)
	}
	return c
}

// Private starts a cluster of the test's own from the binaries of the
// cluster Get returns (so it skips or fails as Get does), in a fresh
// folder, and stops it when the test ends. It takes ~10-20s and ~600 MiB:
// use it for what would disturb other tests (RestartAPIServer, Down,
// exact RequestCounts).
func Private(t testing.TB) *Cluster {
	t.Helper()
	shared := Get(t)
	dir, err := os.MkdirTemp("", "weir-k8stest-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Registered before it starts: Down of the shared cluster stops it
	// even when this test binary dies first.
	entry := filepath.Join(shared.Dir, privateDir, filepath.Base(dir))
	if err := os.MkdirAll(filepath.Dir(entry), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Up(ctx, shared.BinDir, dir)
	if err != nil {
		os.RemoveAll(dir)
		os.Remove(entry)
		t.Fatalf("start a private cluster: %v", err)
	}
	t.Cleanup(func() {
		defer os.Remove(entry)
		if err := c.Down(); err != nil {
			t.Errorf("stop the private cluster in %s: %v", dir, err)
			return
		}
		if t.Failed() {
			t.Logf("private cluster's logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return c
}

// privateDir is the folder of a shared cluster's folder where Private
// lists the clusters it started, one file each holding the folder's path.
const privateDir = "private"

// downPrivate stops the clusters listed in dir/private.
func downPrivate(dir string) error {
	entries, err := os.ReadDir(filepath.Join(dir, privateDir))
	if err != nil {
		return nil // none
	}
	var errs []error
	for _, e := range entries {
		entry := filepath.Join(dir, privateDir, e.Name())
		b, err := os.ReadFile(entry)
		if err != nil {
			continue
		}
		if p, err := Attach(string(b)); err == nil {
			if err := p.Down(); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		os.Remove(entry)
	}
	return errors.Join(errs...)
}

// Namespace creates a namespace named after the test with a random suffix
// and deletes it when the test ends (without waiting for it to go).
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := namespaceName(t.Name())
	if err := c.do(ctx, "POST", "/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"weir.dev/test": "true"}},
	}, 201); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.do(ctx, "DELETE", "/api/v1/namespaces/"+name, nil, 200, 202, 404); err != nil {
			t.Logf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// namespaceName makes a DNS label from a test name: lower case letters,
// digits and dashes, at most 63 characters with a random suffix.
func namespaceName(test string) string {
	b := make([]byte, 0, 63)
	for _, r := range test {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		default:
			if len(b) > 0 && b[len(b)-1] != '-' {
				b = append(b, '-')
			}
		}
		if len(b) >= 50 {
			break
		}
	}
	return fmt.Sprintf("%s-%s", trimDashes(string(b)), randSuffix())
}

func trimDashes(s string) string {
	for len(s) > 0 && s[len(s)-1] == '-' {
		s = s[:len(s)-1]
	}
	for len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return "test"
	}
	return s
}
