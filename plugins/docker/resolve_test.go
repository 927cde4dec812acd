package docker_test

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/schema"
)

// newRegistry serves go-containerregistry's in-process registry over HTTP
// on loopback, and returns its host:port.
func newRegistry(t *testing.T, h http.Handler) string {
	t.Helper()
	if h == nil {
		h = quietRegistry()
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func quietRegistry() http.Handler { return registry.New(registry.Logger(log.New(io.Discard, "", 0))) }

func push(t *testing.T, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img, opts...))
	return img
}

func TestResolveFromRegistry(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	img := push(t, host+"/team/base:1.0")
	want, err := img.Digest()
	require.NoError(t, err)

	r := &docker.Resolver{Keychain: authn.NewMultiKeychain()}
	pin, err := r.Resolve(ctx, host+"/team/base:1.0", nil)
	require.NoError(t, err)
	assert.Equal(t, docker.Pin{Ref: host + "/team/base:1.0", Digest: want.String(), Source: docker.SourceRegistry}, pin)
	assert.Equal(t, host+"/team/base@"+want.String(), pin.Reference())

	// The lock wins over the registry until asked to update.
	push(t, host+"/team/base:1.0") // the tag moves
	lock := docker.Lock{pin.Ref: pin}
	again, err := r.Resolve(ctx, pin.Ref, lock)
	require.NoError(t, err)
	assert.Equal(t, pin, again)
	r.Update = true
	moved, err := r.Resolve(ctx, pin.Ref, lock)
	require.NoError(t, err)
	assert.NotEqual(t, pin.Digest, moved.Digest)

	// A reference by digest is its own pin, with no registry asked.
	byDigest := "nowhere.invalid/x@" + want.String()
	p, err := (&docker.Resolver{Offline: true}).Resolve(ctx, byDigest, nil)
	require.NoError(t, err)
	assert.Equal(t, want.String(), p.Digest)
}

func TestResolveOffline(t *testing.T) {
	ctx := context.Background()
	r := &docker.Resolver{Offline: true}
	pin := docker.Pin{Ref: "python:3.12", Digest: "sha256:" + strings.Repeat("a", 64), Source: docker.SourceRegistry}
	got, err := r.Resolve(ctx, "python:3.12", docker.Lock{"python:3.12": pin})
	require.NoError(t, err)
	assert.Equal(t, pin, got)
	assert.Equal(t, "index.docker.io/library/python@"+pin.Digest, got.Reference())

	_, err = r.Resolve(ctx, "python:3.13", docker.Lock{"python:3.12": pin})
	var unpinned *docker.UnpinnedError
	require.ErrorAs(t, err, &unpinned)
	assert.Equal(t, "image python:3.13 is not pinned in weir.lock and --offline forbids resolving it: run once without --offline to pin it", err.Error())

	lock, err := r.ResolveAll(ctx, []string{"python:3.12", "python:3.12", "a:1", "b:1"}, docker.Lock{"python:3.12": pin, "old:1": pin})
	assert.Equal(t, docker.Lock{"python:3.12": pin}, lock, "the pins that resolved, nothing stale")
	assert.ErrorContains(t, err, "image a:1 is not pinned")
	assert.ErrorContains(t, err, "image b:1 is not pinned")
}

func TestResolveErrors(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	r := &docker.Resolver{Keychain: authn.NewMultiKeychain()}
	_, err := r.Resolve(ctx, host+"/team/missing:1", nil)
	assert.ErrorContains(t, err, "cannot resolve image "+host+"/team/missing:1 (registry: ")
	assert.ErrorContains(t, err, "404 Not Found")

	_, err = r.Resolve(ctx, "Not A Reference", nil)
	assert.ErrorContains(t, err, `image "Not A Reference"`)

	_, err = r.Resolve(ctx, "weir.local/p/s:1", nil)
	assert.ErrorContains(t, err, "no registry or engine to resolve it from", "weir.local images live only in an engine")
}

// TestResolveUsesDockerConfigCredentials: a registry that demands basic
// auth is answered with the credentials of the Docker config
// ($DOCKER_CONFIG/config.json), through authn.DefaultKeychain.
func TestResolveUsesDockerConfigCredentials(t *testing.T) {
	ctx := context.Background()
	reg := quietRegistry()
	host := newRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != "weir" || p != "hunter2" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	img := push(t, host+"/private/base:1", remote.WithAuth(&authn.Basic{Username: "weir", Password: "hunter2"}))
	want, _ := img.Digest()

	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	r := &docker.Resolver{}
	_, err := r.Resolve(ctx, host+"/private/base:1", nil)
	require.Error(t, err, "no credentials yet")
	assert.ErrorContains(t, err, "401 Unauthorized")

	auth := base64.StdEncoding.EncodeToString([]byte("weir:hunter2"))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600))
	pin, err := r.Resolve(ctx, host+"/private/base:1", nil)
	require.NoError(t, err)
	assert.Equal(t, want.String(), pin.Digest)
}

func TestLockRoundTrip(t *testing.T) {
	d := "sha256:" + strings.Repeat("b", 64)
	l := docker.FromLock(&schema.Lock{Images: map[string]string{"python:3.12": d}})
	assert.Equal(t, docker.Lock{"python:3.12": {Ref: "python:3.12", Digest: d}}, l)
	assert.Equal(t, map[string]string{"python:3.12": d}, l.Images())
	assert.Empty(t, docker.FromLock(nil))
}
