package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"weir.dev/weir/cmd/weir/internal/cli"
)

func TestMain(m *testing.M) {
	// The signal tests run this binary as weir.
	if os.Getenv("WEIR_TEST_MAIN") == "1" {
		os.Exit(cli.Main())
	}
	testscript.Main(m, map[string]func(){
		"weir": func() { os.Exit(cli.Main()) },
	})
}

// TestScripts runs the CLI scripts in testdata/script in-process. Each
// script is a txtar archive: its files form the work folder, its commands
// run weir and compare output. WEIR_UPDATE=1 rewrites cmp files.
func TestScripts(t *testing.T) {
	quickstart, err := filepath.Abs("../../examples/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("WEIR_UPDATE") != "",
		Setup: func(env *testscript.Env) error {
			env.Setenv("QUICKSTART", quickstart)
			env.Setenv("NO_COLOR", "1")
			return nil
		},
	})
}
