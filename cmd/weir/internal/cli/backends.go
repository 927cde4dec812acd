package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"weir.dev/weir/plugins/local"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// builtinKinds are the backend kinds this weir runs in-process.
var builtinKinds = []string{"local"}

// backends holds the backends a plan's steps run on, opened once.
type backends struct {
	byName map[string]backend.Interface
	close  []func()
}

// openBackends resolves each backend of the plan to an implementation. An
// unknown kind is an error naming the kinds available.
func openBackends(ctx context.Context, dir string, cfgs map[string]*schema.Backend) (*backends, error) {
	bs := &backends{byName: map[string]backend.Interface{}}
	names := make([]string, 0, len(cfgs))
	for n := range cfgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var loc *local.Backend
	for _, name := range names {
		cfg := cfgs[name]
		switch cfg.Kind {
		case "local":
			if loc == nil {
				loc = local.New(cfg.GPUs)
			}
			bs.byName[name] = loc
		default:
			bs.Close()
			return nil, fmt.Errorf("backend %s is of kind %q, which this weir cannot run (available kinds: %v)", name, cfg.Kind, builtinKinds)
		}
	}
	return bs, nil
}

// Close stops what openBackends started (plugin processes).
func (bs *backends) Close() {
	for _, c := range bs.close {
		c()
	}
	bs.close = nil
}

// lower hands each step to its backend's lowering, for the plan.
func lower(name string, cfg *schema.Backend, s *schema.Step) (json.RawMessage, error) {
	kind := "local"
	if cfg != nil {
		kind = cfg.Kind
	}
	if kind != "local" {
		return nil, fmt.Errorf("backend %s is of kind %q, which this weir cannot run (available kinds: %v)", name, kind, builtinKinds)
	}
	t, err := local.Lower(s)
	if err != nil {
		return nil, fmt.Errorf("backend %s cannot run this step: %v", name, err)
	}
	return t, nil
}
