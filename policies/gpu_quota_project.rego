# METADATA
# title: Training fits the project GPU quota
# description: |
#   data.weir.config.gpu_quota.project bounds the GPUs the plan's training may
#   hold at once. The demand is the peak if every training entry ran at the
#   same time: for each training entry, the GPUs of one of its steps that will
#   run (kind train or trial, action run) times the number of those steps that
#   can run together (all of them, or search.parallelism when set), summed over
#   entries. Cached steps hold nothing. Per-backend parallelism is not taken
#   into account, so the estimate errs high. When the spec alone bounds the
#   demand under the quota (every entry running its whole search at once), the
#   plan is not scanned.
# custom:
#   id: weir.gpu.quota.project
#   severity: error
#   remediation: |
#     Set search.parallelism on large searches, ask for fewer GPUs per trial,
#     or raise gpu_quota.project in policy.data.
package weir.gpu.quota.project

import data.weir.lib.runs
import data.weir.lib.text

quota := data.weir.config.gpu_quota.project

# running are [element, gpus] for each training step that will run and
# holds GPUs.
running := [[step.element, g] |
	some step in input.plan.steps
	step.action == "run"
	step.kind in {"train", "trial"}
	gpu := step.run.resources.gpu
	gpu > 0
	g := gpu * object.get(step.run, "workers", 1)
]

# demand[element] is the GPUs the element can hold at once. OPA indexes
# the inner comprehension by element (it evaluates it once and looks the
# groups up), so this is linear in the plan; see lib/runs on performance.
demand := d if {
	d := {element: n |
		some element in {x[0] | some x in running}
		gpus := [g | some x in running; x[0] == element; g := x[1]]
		n := max(gpus) * min([count(gpus), parallelism(element, count(gpus))])
	}
}

parallelism(element, n) := p if {
	name := trim_prefix(element, "training.")
	p := input.project.training[name].search.parallelism
} else := n

deny contains finding if {
	is_number(quota)
	not bound <= quota
	total := sum([g | some g in demand])
	total > quota
	finding := {
		"msg": sprintf("the plan's training can hold %d GPUs at once (%s), above the project quota of %d", [total, text.list(object.keys(demand)), quota]),
		"path": "policy.data.gpu_quota.project",
	}
}

# bound is an upper bound of the demand from the spec alone: each training
# entry running as many steps at once as its search allows. It is undefined
# when some entry's concurrency is unknown (a range without a budget).
bound := sum(xs) if {
	xs := [x | some _, t in input.project.training; x := runs.gpus(t) * concurrency(t)]
	count(xs) == count(input.project.training)
}

concurrency(t) := p if {
	p := t.search.parallelism
} else := b if {
	b := t.search.budget
} else := n if {
	vals := [count(p.values) | some p in t.search.params]
	count(vals) == count(t.search.params)
	n := product(vals)
} else := 1 if not t.search
