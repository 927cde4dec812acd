# METADATA
# title: Serving helpers
# description: |
#   Which monitoring entries watch which serving entry, and which model a
#   serving entry serves, indexed once so rules stay linear in the spec.
package weir.lib.serving

# target(name, m) is the address of the serving entry the monitoring entry
# watches: its `serving` reference, or serving.<its own name>.
target(name, m) := t if {
	ref := m.serving
	t := addr(ref)
} else := concat(".", ["serving", name])

addr(ref) := ref if startswith(ref, "serving.")

addr(ref) := concat(".", ["serving", ref]) if not startswith(ref, "serving.")

# watchers[serving_address] are the names of the monitoring entries that
# watch it. (The inner comprehension is indexed by t: linear.)
watchers := w if {
	w := {t: names |
		some t in {p[0] | some p in targets}
		names := {name | some p in targets; p[0] == t; name := p[1]}
	}
}

targets := [[target(name, m), name] | some name, m in input.project.monitoring]

# production(s) holds for an endpoint whose environment is absent or
# "production".
production(s) if not s.environment

production(s) if s.environment == "production"

# model_name(ref) is the model's name in a reference such as
# "models.churn@production".
model_name(ref) := trim_prefix(split(ref, "@")[0], "models.") if startswith(ref, "models.")
