# METADATA
# title: Run sites and images
# description: |
#   Helpers for the built-in rules: every place in the spec where user code
#   runs (a "run site"), addressed by its field path, and every container
#   image the spec names.
package weir.lib.runs

# sites[path] is the run configuration (image, command, code, env,
# resources, backend ...) written at path. Training entries are run sites
# themselves; their other fields (features, search ...) ride along.
#
# On performance, for every rule of the bundle (they must stay fast over
# 10,000 plan steps): build lookup tables with comprehensions, never with
# partial object rules (`t[k] := v if ...`, `t[k] contains v if ...`),
# which OPA builds by checking each new key against every earlier one,
# quadratic in the keys; group with an inner comprehension that compares
# to the outer key (`{k: vs | some k in keys; vs := [v | some p in pairs;
# p[0] == k; v := p[1]]}` inside a rule body), which OPA indexes and so
# evaluates once; do not join lists with `object.union` (it copies deeply);
# and look values up by key instead of scanning.
sites := {pair[0]: pair[1] | some list in site_pairs; some pair in list}

site_pairs := [
	[[concat("", ["features.", name, ".transform"]), fs.transform] | some name, fs in input.project.features; fs.transform],
	[[concat(".", ["training", name]), t] | some name, t in input.project.training],
	[[concat("", ["training.", name, ".evaluate"]), t.evaluate] | some name, t in input.project.training; t.evaluate],
	[[concat(".", ["batch", name]), b] | some name, b in input.project.batch],
	[[concat(".", ["tasks", name]), t] | some name, t in input.project.tasks],
	[[concat("", ["serving.", name, ".server"]), s.server] | some name, s in input.project.serving; s.server],
]

# images[path] is the image reference written at path: the image of every
# run site that names one, and defaults.image.
images := {pair[0]: pair[1] | some list in image_pairs; some pair in list}

image_pairs := [
	[[concat(".", [site, "image"]), run.image] | some site, run in sites; run.image],
	[["defaults.image", ref] | ref := input.project.defaults.image],
]

# backend(site, run) is the backend a run site uses: its own, the serving
# entry's for a model server, then defaults.backend, then "local".
backend(_, run) := run.backend

backend(site, run) := b if {
	not run.backend
	b := site_backend(site)
}

site_backend(site) := b if {
	startswith(site, "serving.")
	b := input.project.serving[split(site, ".")[1]].backend
} else := b if {
	b := input.project.defaults.backend
} else := "local"

# resources(run) is what a run site asks for: its own, defaults.resources
# when it sets none, or {}.
resources(run) := r if {
	r := run.resources
} else := r if {
	r := input.project.defaults.resources
} else := {}

# gpus(run) is the number of GPUs one step of the run site holds: its GPUs
# per process times the workers of distributed training (only a training
# entry has distributed).
gpus(run) := object.get(resources(run), "gpu", 0) * object.get(run, ["distributed", "workers"], 1)
