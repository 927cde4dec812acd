package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"weir.dev/weir/compiler"
	"weir.dev/weir/compiler/load"
	"weir.dev/weir/compiler/policy"
	"weir.dev/weir/internal/diag"
	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/schema"
)

// offline is set by --offline (or WEIR_OFFLINE=1): images are resolved from
// weir.lock only.
func offlineMode(flag bool) bool { return flag || os.Getenv("WEIR_OFFLINE") == "1" }

// imageResolver is the compiler's resolve pass as the CLI wires it: pins
// come from weir.lock; a tag it does not pin is resolved through its
// registry (credentials from the Docker config) and written back to
// weir.lock. Offline, an unpinned tag is an error; online, a tag that cannot
// be resolved is a warning (the image policies still judge it).
func imageResolver(dir string, offline bool, stderr io.Writer) func(context.Context, []string) (map[string]string, diag.Diagnostics) {
	return func(ctx context.Context, refs []string) (map[string]string, diag.Diagnostics) {
		lock, err := schema.ReadLock(dir)
		if err != nil {
			return nil, diag.Diagnostics{diag.Errorf("lock", "", nil, "%v", err)}
		}
		pinned := docker.FromLock(lock)
		r := &docker.Resolver{Offline: offline}
		pins := map[string]string{}
		var ds diag.Diagnostics
		changed := false
		for _, ref := range refs {
			if _, digest, ok := strings.Cut(ref, "@"); ok {
				pins[ref] = digest // pinned in the spec itself
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			pin, err := r.Resolve(rctx, ref, pinned)
			cancel()
			var unpinned *docker.UnpinnedError
			switch {
			case errors.As(err, &unpinned):
				ds = append(ds, diag.Errorf("unpinned-image", "", nil,
					"image %s is not pinned in %s, and --offline forbids resolving it: run weir plan once online, or pin it by digest", ref, schema.LockFile))
			case err != nil:
				ds = append(ds, diag.Warnf("unresolved-image", "", nil, "image %s could not be resolved to a digest (%v): it is keyed by its tag", ref, err))
			default:
				pins[ref] = pin.Digest
				if old, ok := pinned[ref]; !ok || old.Digest != pin.Digest {
					pinned[ref] = pin
					changed = true
				}
			}
		}
		if changed {
			if lock.Images == nil {
				lock.Images = map[string]string{}
			}
			for ref, digest := range pinned.Images() {
				lock.Images[ref] = digest
			}
			if err := schema.WriteLock(dir, lock); err != nil {
				ds = append(ds, diag.Warnf("lock", "", nil, "the image pins could not be written to %s: %v", schema.LockFile, err))
			} else {
				fmt.Fprintf(stderr, "note: pinned %d image(s) in %s\n", len(pins), schema.LockFile)
			}
		}
		return pins, ds
	}
}

// withImages evaluates the policies with the plan's image pins as the
// input's lock.
func withImages(dir string) compiler.PolicyFunc {
	return func(ctx context.Context, ld *load.Result, p *schema.Plan) ([]schema.Finding, diag.Diagnostics) {
		return policyPass(dir, policy.Lock{Images: p.Images}, nil)(ctx, ld, p)
	}
}
