package launcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"gocloud.dev/blob"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
)

// Option changes how Stage and Collect work.
type Option func(*options)

type options struct {
	store *artifact.Store
}

// WithStore makes Stage and Collect use s, normally the project's own
// artifact store, to digest inputs and receive outputs: inputs it holds
// already are not copied again, and downloaded outputs land in it. Without
// it, a temporary store is made and removed for each call.
func WithStore(s *artifact.Store) Option { return func(o *options) { o.store = s } }

// storeFor returns the store of the options, or a temporary one and the
// function removing it.
func (o *options) storeFor() (*artifact.Store, func(), error) {
	if o.store != nil {
		return o.store, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "weir-launcher-")
	if err != nil {
		return nil, nil, err
	}
	s, err := artifact.Open(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { os.RemoveAll(dir) }, nil
}

// Stage prepares a task for the launcher, on the host: it uploads the
// task's inputs (files or folders, as runtime/artifact digests them; a blob
// the bucket holds already is not uploaded again) and params.json (the file
// named by WEIR_PARAMS) to the bucket's blobs/, removes the result of an
// earlier attempt under prefix, and writes the manifest at
// PREFIX/manifest.json. It returns the manifest as written.
//
// bucketURL is a gocloud.dev URL (s3://, gs://, azblob://, file://);
// prefix names the task's objects, e.g. runs/RUN/STEP/ATTEMPT. Input and
// output names must stay inside their folders (artifact.SafeOutputName),
// and the task's Dir inside its WorkDir. A missing input is an error and
// nothing is written.
func Stage(ctx context.Context, bucketURL, prefix string, t *backend.Task, opts ...Option) (_ *Manifest, err error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	m := &Manifest{Version: Version, RunID: t.RunID, Step: t.Step, Attempt: t.Attempt, WorkDir: t.WorkDir}
	if t.Dir != "" && t.WorkDir != "" && filepath.Clean(t.Dir) != filepath.Clean(t.WorkDir) {
		rel, err := filepath.Rel(t.WorkDir, t.Dir)
		if err != nil || artifact.SafeOutputName(filepath.ToSlash(rel)) != nil {
			return nil, fmt.Errorf("the step's folder %s is outside its work folder %s", t.Dir, t.WorkDir)
		}
		m.Dir = filepath.ToSlash(rel)
	}
	for _, name := range slices.Sorted(maps.Keys(t.Outputs)) {
		if err := artifact.SafeOutputName(name); err != nil {
			return nil, err
		}
		m.Outputs = append(m.Outputs, Output{Name: name, Path: "out/" + name})
	}
	for _, name := range slices.Sorted(maps.Keys(t.Inputs)) {
		if err := artifact.SafeOutputName(name); err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		if _, err := os.Lstat(t.Inputs[name]); err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
	}
	s, done, err := o.storeFor()
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := openBucket(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	defer closeBucket(b, &err)
	for _, name := range slices.Sorted(maps.Keys(t.Inputs)) {
		obj, err := s.PutPath(t.Inputs[name])
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		if _, err := putBlob(ctx, b, s, obj.Digest, obj.Size); err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		m.Inputs = append(m.Inputs, Input{Name: name, Path: "in/" + name, Blob: Blob{Digest: obj.Digest, Size: obj.Size, IsDir: obj.IsDir}})
	}
	if p := t.Env["WEIR_PARAMS"]; p != "" {
		d, n, err := s.PutFile(p)
		if err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
		if _, err := putBlob(ctx, b, s, d, n); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
		m.Params = &Blob{Digest: d, Size: n}
	}
	if err := b.Delete(ctx, key(prefix, ResultObject)); err != nil && !notFound(err) {
		return nil, fmt.Errorf("removing an earlier result: %w", err)
	}
	if err := writeJSON(ctx, b, key(prefix, ManifestObject), m); err != nil {
		return nil, err
	}
	return m, nil
}

// ErrNoResult is wrapped by the errors of Collect and ReadResult when the
// launcher wrote no result under the prefix: it never ran, or was killed
// before the command ended.
var ErrNoResult = errors.New("the launcher left no result")

// ReadResult reads the result the launcher wrote under prefix.
func ReadResult(ctx context.Context, bucketURL, prefix string) (_ *Result, err error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	b, err := openBucket(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	defer closeBucket(b, &err)
	return readResult(ctx, b, prefix)
}

func readResult(ctx context.Context, b *blob.Bucket, prefix string) (*Result, error) {
	var r Result
	if err := readJSON(ctx, b, key(prefix, ResultObject), &r); err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("%s: %w", key(prefix, ResultObject), ErrNoResult)
		}
		return nil, fmt.Errorf("reading the result: %w", err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("result version %d, this weir reads version %d: build the image's launcher from the same weir", r.Version, Version)
	}
	return &r, nil
}

// Collect brings a task's results back to the host once the launcher has
// ended: each output the result lists is downloaded, its digest checked,
// and placed at the task's path for it (t.Outputs[NAME]: a file, or a
// folder extracted from its tar); metrics.jsonl is written at WEIR_METRICS
// (or WorkDir/metrics.jsonl). An output the step did not write is left
// absent, for the executor to report; a blob whose content does not match
// its digest is an error wrapping artifact.ErrCorrupt and nothing is left
// at its path. The step's own failure is not an error of Collect: it is in
// the result's exit code (ReadResult).
func Collect(ctx context.Context, bucketURL, prefix string, t *backend.Task, opts ...Option) (err error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	b, err := openBucket(ctx, bucketURL)
	if err != nil {
		return err
	}
	defer closeBucket(b, &err)
	r, err := readResult(ctx, b, prefix)
	if err != nil {
		return err
	}
	s, done, err := o.storeFor()
	if err != nil {
		return err
	}
	defer done()
	for _, a := range r.Outputs {
		dst, ok := t.Outputs[a.Name]
		if !ok {
			continue // not an output of this task: never written anywhere
		}
		if err := artifact.SafeOutputName(a.Name); err != nil {
			return err
		}
		if err := getBlob(ctx, b, s, a.Blob); err != nil {
			return fmt.Errorf("output %s: %w", a.Name, err)
		}
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("output %s: %w", a.Name, err)
		}
		if err := s.Materialize(a.Digest, dst, a.IsDir); err != nil {
			return fmt.Errorf("output %s: %w", a.Name, err)
		}
	}
	if r.Metrics != nil {
		dst := t.Env["WEIR_METRICS"]
		if dst == "" {
			dst = filepath.Join(t.WorkDir, "metrics.jsonl")
		}
		if err := getBlob(ctx, b, s, *r.Metrics); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := s.Materialize(r.Metrics.Digest, dst, false); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}
