package artifact_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"weir.dev/weir/runtime/artifact"
)

// A step's output goes into the store; the next step gets its own copy.
func Example() {
	project, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(project)
	store, err := artifact.Open(filepath.Join(project, ".weir", "artifacts"))
	if err != nil {
		fmt.Println(err)
		return
	}
	out := filepath.Join(project, "work", "model")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "weights.bin"), []byte("0.1 0.2 0.3"), 0o644)

	obj, err := store.PutPath(out)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(obj.Digest, "sha256:"), obj.IsDir)

	in := filepath.Join(project, "work", "evaluate", "model")
	if err := store.Materialize(obj.Digest, in, obj.IsDir); err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(filepath.Join(in, "weights.bin"))
	fmt.Println(string(b))

	fmt.Println(artifact.SafeOutputName("../model"))
	// Output:
	// true true
	// 0.1 0.2 0.3
	// output name "../model" escapes its folder: use a plain relative name such as "model" or "data/train.csv"
}
