# METADATA
# title: GPU requests fit the backend quota
# description: |
#   data.weir.config.gpu_quota.backends maps a backend name to the most GPUs
#   one step may hold on it. A step holds resources.gpu GPUs per process times
#   distributed.workers processes (training). Backends without a quota are not
#   checked.
# custom:
#   id: weir.gpu.quota.backend
#   severity: error
#   remediation: |
#     Ask for fewer GPUs (or fewer workers), run the step on another backend,
#     or raise gpu_quota.backends in policy.data.
package weir.gpu.quota.backend

import data.weir.lib.runs

quotas := data.weir.config.gpu_quota.backends

deny contains finding if {
	count(quotas) > 0
	some site, run in runs.sites
	gpus := runs.gpus(run)
	gpus > 0
	backend := runs.backend(site, run)
	quota := quotas[backend]
	gpus > quota
	finding := {
		"msg": sprintf("%s asks for %d GPUs per step on backend %s, whose quota is %d", [site, gpus, backend, quota]),
		"path": gpu_path(site, run),
	}
}

gpu_path(site, run) := concat(".", [site, "resources.gpu"]) if run.resources.gpu

gpu_path(_, run) := "defaults.resources.gpu" if not run.resources.gpu
