# METADATA
# title: Served models are monitored and alert someone
# description: |
#   Every serving entry is watched by a monitoring entry (one whose serving
#   reference names it, or, without a reference, one with the same name), and
#   at least one of its monitoring entries has an alert that notifies
#   somewhere.
# custom:
#   id: weir.serving.monitored
#   severity: error
#   remediation: |
#     Add monitoring.<name> with drift or performance checks and alerts
#     whose notify routes to a webhook, e-mail, Slack or PagerDuty.
package weir.serving.monitored

import data.weir.lib.serving

deny contains finding if {
	some name, _ in input.project.serving
	addr := concat(".", ["serving", name])
	not serving.watchers[addr]
	finding := {"msg": sprintf("%s is not monitored: no monitoring entry watches it", [addr]), "path": addr}
}

deny contains finding if {
	some name, _ in input.project.serving
	addr := concat(".", ["serving", name])
	watchers := serving.watchers[addr]
	not alerted(watchers)
	some m in watchers
	finding := {
		"msg": sprintf("monitoring.%s watches %s but has no alert that notifies anyone", [m, addr]),
		"path": concat("", ["monitoring.", m, ".alerts"]),
	}
}

alerted(watchers) if {
	some m in watchers
	some alert in input.project.monitoring[m].alerts
	alert.notify != ""
}
