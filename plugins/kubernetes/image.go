package kubernetes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"weir.dev/weir/plugins/docker"
	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// LauncherInImage is the config.launcher value saying the steps' images
// already carry the launcher at launcher.Path: Submit then runs them as
// they are, derives nothing and needs no registry (nor can it ship a code
// folder).
const LauncherInImage = "in-image"

// LauncherName is the launcher binary's file name, looked for next to the
// weir executable and on PATH when config.launcher is not set.
const LauncherName = "weir-launcher"

// DeriveImage returns the image a step runs when the backend has a
// bucket: base, plus the code folder codeDir at /weir/code when codeDir
// is not "" (plugins/docker's Derive, which also makes /weir/code the
// working folder), plus the launcher binary at launcher.Path as the
// entrypoint (launcher.AddToImage). Both layers are reproducible, so the
// same base, files and launcher give the same digest on any machine. It
// is a pure transform: nothing is read from a registry or written.
func DeriveImage(base v1.Image, codeDir string, launcherBinary []byte) (v1.Image, error) {
	img, err := withCode(base, codeDir)
	if err != nil {
		return nil, err
	}
	return launcher.AddToImage(img, launcherBinary)
}

// withCode is base with the code folder's layer, or base when codeDir is "".
func withCode(base v1.Image, codeDir string) (v1.Image, error) {
	if codeDir == "" {
		return base, nil
	}
	img, err := docker.Derive(base, codeDir)
	if err != nil {
		return nil, fmt.Errorf("packaging the code folder %s: %w", codeDir, err)
	}
	return img, nil
}

// imageCache keeps, for one backend, what deriving step images learns:
// the launcher binary, the projects' pins, base images pinned by digest,
// derived images by their inputs and the manifests known to be in the
// registry. Everything in it is named by content, so nothing in it goes
// stale during an apply.
type imageCache struct {
	mu       sync.Mutex
	bins     map[string]*launcherBinary // by path
	pins     map[string]docker.Lock     // by project folder
	bases    map[string]v1.Image        // by REPO@DIGEST
	derived  map[string]v1.Image        // by "PRE-LAUNCHER-DIGEST LAUNCHER-SUM"
	pushed   map[string]bool            // REPO@DIGEST in the registry
	locks    map[string]*sync.Mutex     // one derivation or push of a kind at a time
	keychain authn.Keychain
	// transport carries registry requests (nil: remote's default).
	transport http.RoundTripper
}

type launcherBinary struct {
	path string
	data []byte
	sum  string
	arch string // GOARCH, "" when not one pulling an index needs to know
}

// images is the derived images' cache of the process: its entries are
// content-addressed, so backends may share it.
var images = newImageCache()

func newImageCache() *imageCache {
	return &imageCache{bins: map[string]*launcherBinary{}, pins: map[string]docker.Lock{}, bases: map[string]v1.Image{},
		derived: map[string]v1.Image{}, pushed: map[string]bool{}, locks: map[string]*sync.Mutex{}, keychain: authn.DefaultKeychain}
}

// stepImage is what Submit runs for a task when the backend has a bucket:
// the task's image (pinned by the project's weir.lock) derived with its
// code folder and the launcher (DeriveImage), pushed to the backend's
// registry unless the registry has it already, and named by digest
// (REGISTRY/PROJECT/ELEMENT@sha256:…: the steps of one element, a sweep's
// trials say, share a repository, where their one image is pushed once;
// element "" is the step's address). note says, for the task's log, what
// was done. With config.launcher "in-image" it is the task's image as it
// is.
func (c *imageCache) stepImage(ctx context.Context, cfg *Config, t *backend.Task, element string) (ref, note string, err error) {
	codeDir := ""
	if t.Dir != "" && filepath.Clean(t.Dir) != filepath.Clean(t.WorkDir) {
		if rel, err := filepath.Rel(t.WorkDir, t.Dir); err != nil || rel != "code" {
			return "", "", fmt.Errorf("step %s: its folder %s is not its work folder's code/", t.Step, t.Dir)
		}
		codeDir = t.Dir
	}
	if err := filesNeeds(cfg, t.Step, len(t.Inputs) > 0, len(t.Outputs) > 0, codeDir != ""); err != nil {
		return "", "", err
	}
	if cfg.Launcher == LauncherInImage {
		return c.pinned(t), "", nil
	}
	if t.Image == "" {
		return "", "", fmt.Errorf("step %s names no image (run.image): the kubernetes backend runs steps in containers", t.Step)
	}
	bin, err := c.launcher(cfg)
	if err != nil {
		return "", "", err
	}
	start := time.Now()
	baseRef := c.pinned(t)
	base, err := c.base(ctx, baseRef, bin.arch)
	if err != nil {
		return "", "", fmt.Errorf("step %s: reading its image %s: %w", t.Step, baseRef, err)
	}
	img, err := c.derive(base, codeDir, bin)
	if err != nil {
		return "", "", fmt.Errorf("step %s: deriving its image from %s: %w", t.Step, baseRef, err)
	}
	if element == "" {
		element = t.Step
	}
	tag, err := docker.DerivedTag(cfg.Registry, cfg.Project, element, img)
	if err != nil {
		return "", "", fmt.Errorf("step %s: naming its image in registry %s: %w", t.Step, cfg.Registry, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	dref := tag.Context().Digest(d.String())
	pushed, err := c.push(ctx, tag, img)
	if err != nil {
		return "", "", fmt.Errorf("step %s: pushing its image to %s: %w", t.Step, tag.Context(), err)
	}
	how := "already in the registry"
	if pushed {
		how = fmt.Sprintf("pushed in %s", time.Since(start).Round(time.Millisecond))
	}
	what := "the launcher"
	if codeDir != "" {
		what = "the code folder and the launcher"
	}
	return dref.String(), fmt.Sprintf("weir: image %s (%s with %s; %s)", dref, baseRef, what, how), nil
}

// pinned is the task's image pinned to the digest weir.lock gives it
// (REPO@DIGEST), or the image as named when the lock has no pin. The
// project folder is the one holding the task's work folder
// (PROJECT/.weir/runs/RUN/STEP, the executor's layout).
func (c *imageCache) pinned(t *backend.Task) string {
	if strings.Contains(t.Image, "@") {
		return t.Image
	}
	sep := string(filepath.Separator)
	i := strings.Index(t.WorkDir, sep+filepath.Join(".weir", "runs")+sep)
	if i <= 0 {
		return t.Image
	}
	dir := t.WorkDir[:i]
	c.mu.Lock()
	pins, ok := c.pins[dir]
	c.mu.Unlock()
	if !ok {
		l, err := schema.ReadLock(dir)
		if err != nil {
			return t.Image // a lock weir plan could not read either; the tag runs
		}
		pins = docker.FromLock(l)
		c.mu.Lock()
		c.pins[dir] = pins
		c.mu.Unlock()
	}
	if p, ok := pins[t.Image]; ok && p.Digest != "" {
		return p.Reference()
	}
	return t.Image
}

func (c *imageCache) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain)}
	if c.transport != nil {
		opts = append(opts, remote.WithTransport(c.transport))
	}
	return opts
}

// base reads an image from its registry (for an index, the one for linux
// and arch). One pinned by digest is read once per process.
func (c *imageCache) base(ctx context.Context, ref, arch string) (v1.Image, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, err
	}
	_, byDigest := r.(name.Digest)
	key := ref + " " + arch
	if byDigest {
		c.mu.Lock()
		img := c.bases[key]
		c.mu.Unlock()
		if img != nil {
			return img, nil
		}
	}
	// The image reads its layers later (when they are pushed), maybe for
	// another task: it must outlive this task's context.
	opts := c.options(context.WithoutCancel(ctx))
	if arch != "" {
		opts = append(opts, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return nil, err
	}
	if byDigest {
		c.mu.Lock()
		c.bases[key] = img
		c.mu.Unlock()
	}
	return img, nil
}

// derive is DeriveImage, with the launcher's layer made once per image
// below it: many steps of one base and code share one result.
func (c *imageCache) derive(base v1.Image, codeDir string, bin *launcherBinary) (v1.Image, error) {
	img, err := withCode(base, codeDir)
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	key := d.String() + " " + bin.sum
	m := c.lock("derive " + key) // steps of one image wait for its one derivation
	m.Lock()
	defer m.Unlock()
	c.mu.Lock()
	out := c.derived[key]
	c.mu.Unlock()
	if out != nil {
		return out, nil
	}
	if out, err = launcher.AddToImage(img, bin.data); err != nil {
		return nil, err
	}
	if _, err := out.Digest(); err != nil { // hash the launcher's layer once, here
		return nil, err
	}
	c.mu.Lock()
	if len(c.derived) >= 256 {
		clear(c.derived) // a long-lived process deriving without end
	}
	c.derived[key] = out
	c.mu.Unlock()
	return out, nil
}

// lock returns the mutex of one piece of work (a derivation, a push), so
// that concurrent tasks needing the same do it once.
func (c *imageCache) lock(key string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		c.locks[key] = m
	}
	return m
}

// push writes img to the registry under tag unless the registry already
// has it (a HEAD of the tag answers with img's digest), and reports
// whether it wrote. remote.Write itself skips blobs the registry has and
// mounts those of another repository of the same registry.
func (c *imageCache) push(ctx context.Context, tag name.Tag, img v1.Image) (bool, error) {
	d, err := img.Digest()
	if err != nil {
		return false, err
	}
	key := tag.Context().Digest(d.String()).String()
	m := c.lock("push " + key)
	m.Lock() // steps of one image wait for its one push
	defer m.Unlock()
	c.mu.Lock()
	done := c.pushed[key]
	c.mu.Unlock()
	if done {
		return false, nil
	}
	opts := c.options(ctx)
	desc, err := remote.Head(tag, opts...)
	var terr *transport.Error
	switch {
	case err == nil && desc.Digest == d:
		c.mu.Lock()
		c.pushed[key] = true
		c.mu.Unlock()
		return false, nil
	case err == nil, errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
	default:
		return false, err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return false, err
	}
	c.mu.Lock()
	c.pushed[key] = true
	c.mu.Unlock()
	return true, nil
}

// launcher reads the launcher binary: config.launcher, else weir-launcher
// next to the running executable (make build puts bin/weir-launcher next
// to bin/weir), else weir-launcher on PATH.
func (c *imageCache) launcher(cfg *Config) (*launcherBinary, error) {
	p, err := findLauncher(cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	bin := c.bins[p]
	c.mu.Unlock()
	if bin != nil {
		return bin, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("backend %s: reading the launcher: %w", cfg.Name, err)
	}
	sum := sha256.Sum256(data)
	bin = &launcherBinary{path: p, data: data, sum: hex.EncodeToString(sum[:]), arch: elfArch(data)}
	c.mu.Lock()
	c.bins[p] = bin
	c.mu.Unlock()
	return bin, nil
}

// findLauncher returns the launcher binary's path, or an error saying
// how to get one.
func findLauncher(cfg *Config) (string, error) {
	if cfg.Launcher != "" {
		p := expandHome(cfg.Launcher)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("backend %s: config.launcher: %w (build it with: CGO_ENABLED=0 GOOS=linux GOARCH=<the cluster's> go build -o %s ./cmd/weir-launcher)", cfg.Name, err, p)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), LauncherName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(LauncherName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("backend %s has config.bucket, so each step's image gets the launcher, and no %s was found (config.launcher, next to the weir executable, or on PATH): run make build (it writes bin/%s), or build one for the cluster's architecture with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o %s ./cmd/weir-launcher and set config.launcher to its path",
		cfg.Name, LauncherName, LauncherName, LauncherName)
}

// elfArch is the GOARCH of a Linux executable, to pick an index's image
// ("" when unknown: launcher.AddToImage says what is wrong with it).
func elfArch(b []byte) string {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	}
	return ""
}

// filesNeeds says what a step's files need of the backend's settings: a
// cluster cannot read this machine's folders, so inputs, outputs and a
// code folder need config.bucket (the launcher moves them), and with a
// bucket weir derives each step's image, which needs a registry to push it
// to (unless config.launcher says the images carry the launcher, which then
// cannot carry a code folder). Submit refuses with it at apply and Check
// at plan time.
func filesNeeds(cfg *Config, step string, inputs, outputs, code bool) error {
	if cfg.Bucket == "" {
		var what []string
		if inputs {
			what = append(what, "inputs")
		}
		if outputs {
			what = append(what, "outputs")
		}
		if code {
			what = append(what, "a code folder")
		}
		if len(what) == 0 {
			return nil
		}
		return fmt.Errorf("step %s has %s, which a cluster cannot read from this machine: set config.bucket and registry in backend %s so the launcher moves them through object storage (and the code folder travels in an image weir derives), or build them into the image",
			step, strings.Join(what, " and "), cfg.Name)
	}
	if cfg.Launcher == LauncherInImage {
		if code {
			return fmt.Errorf("step %s has a code folder (run.code), but backend %s sets config.launcher to %q, so weir derives no image to carry it: build the code into the image, or leave config.launcher out and set registry", step, cfg.Name, LauncherInImage)
		}
		return nil
	}
	if cfg.Registry == "" {
		return fmt.Errorf("backend %s has config.bucket, so each step runs in an image weir derives (its image, code folder and the launcher) and pushes, but the backend names no registry: set registry in backend %s (e.g. registry: \"ghcr.io/acme/weir\"), or set config.launcher to %q when the step images already carry the launcher", cfg.Name, cfg.Name, LauncherInImage)
	}
	return nil
}
