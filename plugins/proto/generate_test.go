package proto_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The generators the committed code was made with (Makefile, generate).
const (
	protocVersion          = "libprotoc 3.21.12"
	protocGenGoVersion     = "protoc-gen-go v1.36.12"
	protocGenGoGRPCVersion = "protoc-gen-go-grpc 1.6.2"
)

// tool finds a generator on PATH or in GOPATH/bin and checks its version;
// the test is skipped without it, since another version writes other code.
func tool(t *testing.T, name, want string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		p = filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (make generate installs it)", name)
		}
	}
	out, err := exec.Command(p, "--version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != want {
		t.Skipf("%s is %q, not the pinned %q", name, got, want)
	}
	return p
}

// TestGenerated regenerates the protocol's Go code and compares it with the
// committed files: edit backend.proto, then run make generate.
func TestGenerated(t *testing.T) {
	protoc := tool(t, "protoc", protocVersion)
	gen := tool(t, "protoc-gen-go", protocGenGoVersion)
	genGRPC := tool(t, "protoc-gen-go-grpc", protocGenGoGRPCVersion)
	out := t.TempDir()
	cmd := exec.Command(protoc, "--plugin=protoc-gen-go="+gen, "--plugin=protoc-gen-go-grpc="+genGRPC,
		"--go_out="+out, "--go_opt=paths=source_relative", "--go-grpc_out="+out, "--go-grpc_opt=paths=source_relative", "backend.proto")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	for _, f := range []string{"backend.pb.go", "backend_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what backend.proto generates: run make generate", f)
		}
	}
}
