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
sites[path] := run if {
	some name, fs in input.project.features
	run := fs.transform
	path := concat("", ["features.", name, ".transform"])
}

sites[path] := run if {
	some name, run in input.project.training
	path := concat(".", ["training", name])
}

sites[path] := run if {
	some name, t in input.project.training
	run := t.evaluate
	path := concat("", ["training.", name, ".evaluate"])
}

sites[path] := run if {
	some name, run in input.project.batch
	path := concat(".", ["batch", name])
}

sites[path] := run if {
	some name, run in input.project.tasks
	path := concat(".", ["tasks", name])
}

sites[path] := run if {
	some name, s in input.project.serving
	run := s.server
	path := concat("", ["serving.", name, ".server"])
}

# images[path] is the image reference written at path: the image of every
# run site that names one, and defaults.image.
images[path] := ref if {
	some site, run in sites
	ref := run.image
	path := concat(".", [site, "image"])
}

images["defaults.image"] := input.project.defaults.image

# backend(site, run) is the backend a run site uses: its own, the serving
# entry's for a model server, then defaults.backend, then "local".
backend(_, run) := run.backend

backend(site, run) := b if {
	not run.backend
	b := site_backend(site)
}

site_backend(site) := b if {
	parts := split(site, ".")
	parts[0] == "serving"
	b := input.project.serving[parts[1]].backend
} else := b if {
	b := input.project.defaults.backend
} else := "local"

# resources(run) is what a run site asks for, with defaults.resources when it
# sets none.
resources(run) := run.resources

resources(run) := input.project.defaults.resources if not run.resources

# gpus(site, run) is the number of GPUs one step of the run site holds: its
# GPUs per process times the workers of distributed training.
gpus(site, run) := g * workers(site) if {
	g := object.get(resources(run), "gpu", 0)
}

workers(site) := w if {
	parts := split(site, ".")
	count(parts) == 2
	parts[0] == "training"
	w := input.project.training[parts[1]].distributed.workers
} else := 1
