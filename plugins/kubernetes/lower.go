package kubernetes

import (
	"context"
	"encoding/json"

	"weir.dev/weir/schema"
)

// Lower turns a step into the objects it runs as, shown in the plan: its
// Job (and Service and PodGroup), as StepWorkload builds them outside any
// run. It is pure: it never reaches the cluster (Check does, at plan
// time). The Job a run submits differs only in its name, run labels, owner
// and backoffLimit (weir's executor retries attempts itself: see Submit).
func (b *Backend) Lower(ctx context.Context, s *schema.Step) (json.RawMessage, error) {
	cfg := b.config()
	w, err := StepWorkload(cfg, s, BuildOptions{})
	if err != nil {
		return nil, err
	}
	b.remember(s)
	return json.Marshal(w)
}
