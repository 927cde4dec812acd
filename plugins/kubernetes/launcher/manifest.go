package launcher

import (
	"fmt"
	"path"
	"strings"

	"weir.dev/weir/runtime/artifact"
)

// Version is the version of the manifest and result objects. A launcher
// refuses a manifest of another version, and Collect a result of another
// version: the host and the image must come from the same weir.
const Version = 1

// Root is where the step contract lives inside the container, as in the
// Docker backend: /weir/in/NAME, /weir/out/NAME, /weir/tmp,
// /weir/params.json and /weir/metrics.jsonl.
const Root = "/weir"

// Objects of one task, under its prefix in the bucket.
const (
	ManifestObject = "manifest.json"
	ResultObject   = "result.json"
)

// BlobPrefix is where the blobs live in the bucket, shared by every task:
// blobs/sha256/<64 hex>, named by their digest as in the local store.
const BlobPrefix = "blobs/"

// Exit codes of the launcher itself; otherwise it exits with the command's
// code (128+N when a signal N ended it).
const (
	// ExitLauncher: the launcher failed (bucket unreachable, an input
	// missing or damaged, an output it could not upload): the result
	// object, when it could be written, says why.
	ExitLauncher = 125
	// ExitCannotRun: the command exists but could not be started.
	ExitCannotRun = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
)

// Manifest tells the launcher where each input and output of one task goes
// under Root. Stage writes it at PREFIX/manifest.json. It holds no
// environment: the task's variables (secrets among them) travel in the
// pod's own spec, never in the bucket.
type Manifest struct {
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	// WorkDir is the task's work folder on the host: a variable of the
	// container's environment naming it or a path below it (HOME, TMPDIR)
	// is rewritten to the same place under Root.
	WorkDir string `json:"work_dir,omitempty"`
	// Dir is where the command starts, relative to Root: "" for Root
	// itself, "code" for a code folder (which travels in the image, see
	// plugins/docker's Derive, not in the bucket).
	Dir string `json:"dir,omitempty"`
	// Params is params.json, placed at Root/params.json; nil when the step
	// has no parameters.
	Params  *Blob    `json:"params,omitempty"`
	Inputs  []Input  `json:"inputs,omitempty"`
	Outputs []Output `json:"outputs,omitempty"`
}

// Blob is an object of the bucket named by its content.
type Blob struct {
	// Digest is "sha256:<hex>" as runtime/artifact computes it: of the
	// file, or of a folder's deterministic tar.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	IsDir  bool   `json:"is_dir,omitempty"`
}

// Input is one input of the task: the blob to place at Root/Path.
type Input struct {
	Name string `json:"name"`
	// Path is "in/NAME", relative to Root.
	Path string `json:"path"`
	Blob
}

// Output is one declared output: what the step writes at Root/Path.
type Output struct {
	Name string `json:"name"`
	// Path is "out/NAME", relative to Root.
	Path string `json:"path"`
}

// Result is what the launcher reports once the command has ended, at
// PREFIX/result.json.
type Result struct {
	Version  int `json:"version"`
	ExitCode int `json:"exit_code"`
	// Error is the launcher's own failure ("" when it had none); the
	// exit code is then ExitLauncher unless the command had failed first.
	Error string `json:"error,omitempty"`
	// Outputs are the declared outputs the step wrote, as uploaded; an
	// output it did not write is absent.
	Outputs []Artifact `json:"outputs,omitempty"`
	// Metrics is the step's metrics.jsonl; nil when it reported none.
	Metrics *Blob `json:"metrics,omitempty"`
	// DurationMS is how long the command ran.
	DurationMS int64 `json:"duration_ms"`
}

// Artifact is an output as the launcher uploaded it.
type Artifact struct {
	Name string `json:"name"`
	Blob
}

// BlobKey is where the blob of digest lives in the bucket.
func BlobKey(digest string) (string, error) {
	h, err := artifact.ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return BlobPrefix + artifact.Algorithm + "/" + h, nil
}

// checkPrefix refuses a task prefix that is empty, absolute or climbs out
// of the bucket, or that would overlap the blobs.
func checkPrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("no prefix given for the task's objects")
	case strings.HasPrefix(prefix, "/"), strings.Contains(prefix, `\`), path.Clean(prefix) != strings.TrimSuffix(prefix, "/"),
		prefix == "." || prefix == ".." || strings.HasPrefix(prefix, "../"):
		return fmt.Errorf("prefix %q is not a plain relative key such as \"runs/RUN/STEP/1\"", prefix)
	case strings.HasPrefix(prefix+"/", BlobPrefix):
		return fmt.Errorf("prefix %q is inside %s, where the blobs live", prefix, BlobPrefix)
	}
	return nil
}

func key(prefix, name string) string { return strings.TrimSuffix(prefix, "/") + "/" + name }

// check verifies a manifest read from the bucket: its version, and that
// every name stays inside its folder and every path is the one its name
// gives.
func (m *Manifest) check() error {
	if m.Version != Version {
		return fmt.Errorf("manifest version %d, this launcher reads version %d: build the image's launcher from the same weir", m.Version, Version)
	}
	if m.Dir != "" {
		if err := artifact.SafeOutputName(m.Dir); err != nil {
			return fmt.Errorf("the step's folder: %w", err)
		}
	}
	for _, in := range m.Inputs {
		if err := artifact.SafeOutputName(in.Name); err != nil {
			return fmt.Errorf("input: %w", err)
		}
		if in.Path != "in/"+in.Name {
			return fmt.Errorf("input %s goes to %q, not in/%s", in.Name, in.Path, in.Name)
		}
		if _, err := artifact.ParseDigest(in.Digest); err != nil {
			return fmt.Errorf("input %s: %w", in.Name, err)
		}
	}
	for _, out := range m.Outputs {
		if err := artifact.SafeOutputName(out.Name); err != nil {
			return err
		}
		if out.Path != "out/"+out.Name {
			return fmt.Errorf("output %s is expected at %q, not out/%s", out.Name, out.Path, out.Name)
		}
	}
	if m.Params != nil {
		if _, err := artifact.ParseDigest(m.Params.Digest); err != nil {
			return fmt.Errorf("params: %w", err)
		}
	}
	return nil
}
