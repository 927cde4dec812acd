package data_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"weir.dev/weir/runtime/data"
	"weir.dev/weir/schema"
)

func ExampleValidate() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "customers.csv")
	os.WriteFile(path, []byte("customer_id,tenure\nC1,12\nC2,-3\nC2,4\n"), 0o644)

	minRows := 2
	rep, err := data.Validate(context.Background(), path, schema.ValidateConfig{
		Rules: map[string]schema.ColumnRule{
			"tenure": {Source: "int & >=0", Type: "int", Bounds: []schema.Bound{{Op: ">=", Value: 0}}},
		},
		Checks: &schema.Checks{MinRows: &minRows, Unique: []string{"customer_id"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rep.Summary())
	for _, v := range rep.Violations {
		fmt.Println(v)
	}
	for _, c := range rep.Checks {
		fmt.Println(c)
	}
	// Output:
	// 3 rows, 1 violation in 1 column (tenure), 1 of 2 checks failed (unique customer_id)
	// line 3: column tenure: -3 does not satisfy >=0 (rule: int & >=0)
	// minRows: ok: 3 rows, at least 2 required
	// unique: FAILED: column customer_id: 1 duplicate value, first line 4: C2 already on line 3
}

func ExamplePSI() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o644)
		return path
	}
	ctx := context.Background()
	ref, _ := data.Profile(ctx, write("ref.csv", "plan\nbasic\nbasic\npro\npro\n"), schema.ProfileConfig{})
	same, _ := data.Profile(ctx, write("same.csv", "plan\npro\nbasic\n"), schema.ProfileConfig{})
	moved, _ := data.Profile(ctx, write("moved.csv", "plan\npro\npro\npro\nbasic\n"), schema.ProfileConfig{})

	fmt.Printf("%.3f\n", data.PSI(ref.Column("plan"), same.Column("plan")))
	fmt.Printf("%.3f\n", data.PSI(ref.Column("plan"), moved.Column("plan")))
	// Output:
	// 0.000
	// 0.275
}
