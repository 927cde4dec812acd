package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"weir.dev/weir/compiler/load"
)

// cliInputs are the HCL variables and Jsonnet external variables and
// top-level arguments given on the command line. A process runs one
// command, so the flags of plan, validate and apply write into this one
// value, which compileOptions reads.
var cliInputs = load.Inputs{
	Vars: map[string]string{}, ExtStr: map[string]string{}, ExtCode: map[string]string{},
	TLAStr: map[string]string{}, TLACode: map[string]string{},
}

// addSpecInputFlags gives a command that compiles the spec -var, --ext-str,
// --ext-code, --tla and --tla-code.
func addSpecInputFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.Var(kvFlag(cliInputs.Vars), "var", "set the HCL variable `NAME=VALUE` (repeatable; also WEIR_VAR_NAME=VALUE)")
	fl.Var(kvFlag(cliInputs.ExtStr), "ext-str", "set the Jsonnet external variable `NAME=STRING` (repeatable)")
	fl.Var(kvFlag(cliInputs.ExtCode), "ext-code", "set the Jsonnet external variable `NAME=CODE` (repeatable)")
	fl.Var(kvFlag(cliInputs.TLAStr), "tla", "set the Jsonnet top-level argument `NAME=STRING` (repeatable)")
	fl.Var(kvFlag(cliInputs.TLACode), "tla-code", "set the Jsonnet top-level argument `NAME=CODE` (repeatable)")
}

// specInputs are the command line's inputs with the WEIR_VAR_ variables of
// the environment.
func specInputs() load.Inputs {
	in := cliInputs
	in.EnvVars = map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "WEIR_VAR_") && len(k) > len("WEIR_VAR_") {
			in.EnvVars[strings.TrimPrefix(k, "WEIR_VAR_")] = v
		}
	}
	return in
}

// kvFlag is a repeatable NAME=VALUE flag.
type kvFlag map[string]string

func (f kvFlag) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + f[k]
	}
	return strings.Join(parts, ",")
}

func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, not %q", s)
	}
	f[k] = v
	return nil
}

func (f kvFlag) Type() string { return "NAME=VALUE" }
