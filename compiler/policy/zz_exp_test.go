package policy

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

func TestZZExp(t *testing.T) {
	p, plan, lock, _ := generate(1000)
	val, _ := Input{Project: p, Plan: plan, Lock: lock}.Value()
	ctx := context.Background()
	mod := `package exp

a := count({concat(".", ["training", name]): t | some name, t in input.project.training})
b := count({sprintf("training.%s", [name]): t | some name, t in input.project.training})
c := count({$"training.{name}": t | some name, t in input.project.training})
d := count({name: t | some name, t in input.project.training})
e := count([1 | some s in input.plan.steps])
f := count([1 | some i in numbers.range(0, 9999); s := input.plan.steps[i]])
g := count([1 | some _, s in input.plan.steps])
h := count([1 | s := input.plan.steps[_]])
`
	for _, q := range []string{"x := data.exp.a", "x := data.exp.b", "x := data.exp.c", "x := data.exp.d", "x := data.exp.e", "x := data.exp.f", "x := data.exp.g", "x := data.exp.h"} {
		pq, err := rego.New(rego.Query(q), rego.Module("exp.rego", mod)).PrepareForEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var best uint64 = 1 << 62
		bestc := time.Hour
		var rs rego.ResultSet
		for range 3 {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			c0 := cpuTime()
			rs, err = pq.Eval(ctx, rego.EvalParsedInput(val))
			c := cpuTime() - c0
			runtime.ReadMemStats(&m1)
			best = min(best, m1.Mallocs-m0.Mallocs)
			bestc = min(bestc, c)
		}
		t.Logf("%8d allocs %12v %v %v %s", best, bestc, rs[0].Bindings["x"], err, q)
	}
}
