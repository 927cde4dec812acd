package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"weir.dev/weir/schema"
)

// Where a pin's digest comes from.
const (
	SourceRegistry = "registry"
	SourceEngine   = "engine"
)

// Pin is an image reference resolved to a digest, as weir.lock keeps it.
type Pin struct {
	// Ref is the reference as the spec writes it ("python:3.12").
	Ref string `json:"ref"`
	// Digest is the manifest digest in the registry, or the image ID in
	// the engine when the image exists only there.
	Digest string `json:"digest"`
	Source string `json:"source"`
}

// Reference is what to run: REPO@DIGEST for a registry pin, the image ID
// for an engine pin.
func (p Pin) Reference() string {
	if p.Source == SourceEngine {
		return p.Digest
	}
	ref, err := name.ParseReference(p.Ref, name.WeakValidation)
	if err != nil {
		return p.Ref
	}
	return ref.Context().Name() + "@" + p.Digest
}

// Lock is the images part of weir.lock: pins by reference as written.
type Lock map[string]Pin

// FromLock reads the pins of weir.lock (schema.Lock.Images, reference to
// digest). Their source is not recorded there: a digest is run as
// REPO@DIGEST when the engine has that, else as an image ID.
func FromLock(l *schema.Lock) Lock {
	out := Lock{}
	if l == nil {
		return out
	}
	for ref, d := range l.Images {
		out[ref] = Pin{Ref: ref, Digest: d}
	}
	return out
}

// Images is the lock as weir.lock keeps it: reference to digest.
func (l Lock) Images() map[string]string {
	out := make(map[string]string, len(l))
	for ref, p := range l {
		out[ref] = p.Digest
	}
	return out
}

// UnpinnedError says an image cannot be resolved offline: weir.lock does
// not pin it.
type UnpinnedError struct{ Ref string }

func (e *UnpinnedError) Error() string {
	return fmt.Sprintf("image %s is not pinned in weir.lock and --offline forbids resolving it: run once without --offline to pin it", e.Ref)
}

// Resolver turns image tags into digests: from a registry with
// go-containerregistry's remote package (credentials from the Docker
// config), from the engine with its daemon package.
type Resolver struct {
	// Offline uses the lock only.
	Offline bool
	// Update resolves every reference again, even those the lock pins.
	Update bool
	// Keychain finds registry credentials (default: the Docker config's,
	// authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport carries registry requests (default: http.DefaultTransport).
	Transport http.RoundTripper
	// Engine, when set, resolves images that only the engine has.
	Engine daemon.Client
}

// Resolve returns ref's pin. A reference that already names a digest is
// its own pin; a pinned one comes from lock (unless Update); otherwise the
// registry is asked, then the engine. Offline, an unpinned reference is an
// *UnpinnedError.
func (r *Resolver) Resolve(ctx context.Context, ref string, lock Lock) (Pin, error) {
	parsed, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return Pin{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if d, ok := parsed.(name.Digest); ok {
		return Pin{Ref: ref, Digest: d.DigestStr(), Source: SourceRegistry}, nil
	}
	if p, ok := lock[ref]; ok && !r.Update && p.Digest != "" {
		return p, nil
	}
	if r.Offline {
		return Pin{}, &UnpinnedError{Ref: ref}
	}
	var errs []string
	if parsed.Context().RegistryStr() != LocalRegistry {
		kc := r.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
		if r.Transport != nil {
			opts = append(opts, remote.WithTransport(r.Transport))
		}
		desc, err := remote.Head(parsed, opts...)
		if err == nil {
			return Pin{Ref: ref, Digest: desc.Digest.String(), Source: SourceRegistry}, nil
		}
		errs = append(errs, "registry: "+err.Error())
	}
	if r.Engine != nil {
		img, err := daemon.Image(parsed, daemon.WithClient(r.Engine), daemon.WithContext(ctx), daemon.WithUnbufferedOpener())
		if err == nil {
			var id v1.Hash
			if id, err = img.ConfigName(); err == nil {
				return Pin{Ref: ref, Digest: id.String(), Source: SourceEngine}, nil
			}
		}
		errs = append(errs, "engine: "+err.Error())
	}
	if len(errs) == 0 {
		return Pin{}, fmt.Errorf("image %s: no registry or engine to resolve it from", ref)
	}
	return Pin{}, fmt.Errorf("cannot resolve image %s (%s)", ref, strings.Join(errs, "; "))
}

// ResolveAll pins every reference in refs, returning the new lock (the old
// one's pins of other references are dropped: the lock holds what the spec
// uses). Errors name each reference that failed.
func (r *Resolver) ResolveAll(ctx context.Context, refs []string, lock Lock) (Lock, error) {
	out := Lock{}
	var errs []error
	for _, ref := range refs {
		if _, done := out[ref]; done {
			continue
		}
		p, err := r.Resolve(ctx, ref, lock)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[ref] = p
	}
	return out, errors.Join(errs...)
}
