package registry_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"weir.dev/weir/runtime/registry"
	"weir.dev/weir/runtime/state"
	"weir.dev/weir/schema"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	db, err := state.Open(ctx, filepath.Join(dir, ".weir", "state.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	reg := registry.New(db)

	gates := map[string]schema.ColumnRule{"auc": {Source: ">=0.80", Bounds: []schema.Bound{{Op: ">=", Value: 0.80}}}}
	v1, _ := reg.Register(ctx, registry.RegisterRequest{Model: "churn", ArtifactDigest: "sha256:aa", Metrics: map[string]float64{"auc": 0.71}, Gates: gates})
	fmt.Println(v1.Version, v1.Status, v1.Gates[0].Message)

	v2, _ := reg.Register(ctx, registry.RegisterRequest{Model: "churn", ArtifactDigest: "sha256:bb", Metrics: map[string]float64{"auc": 0.86}, Gates: gates})
	fmt.Println(v2.Version, v2.Status)

	_, err = reg.Promote(ctx, "churn", 2, "prod", "alice", true)
	fmt.Println(err)
	reg.Approve(ctx, "churn", 2, "bob", []string{"bob"}, "looks good")
	reg.Promote(ctx, "churn", 2, "prod", "alice", true)
	prod, _ := reg.Resolve(ctx, "churn", "prod")
	fmt.Println("prod is version", prod.Version)
	fmt.Println(db.VerifyAudit(ctx))
	// Output:
	// 1 rejected auc = 0.71 does not satisfy >=0.80
	// 2 candidate
	// model churn version 2 needs an approval before it can be promoted to prod
	// prod is version 2
	// <nil>
}
