package launcher

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Path is where AddToImage puts the launcher in the image.
const Path = Root + "/bin/weir-launcher"

// epoch is the time of every entry of the launcher's layer.
var epoch = time.Unix(0, 0).UTC()

// AddToImage returns base with one more layer holding the launcher binary
// at Path, and Path as its entrypoint (the image's command is cleared: the
// launcher's arguments are given when the container is made). The layer is
// reproducible (entries in a fixed order, times at the Unix epoch, owner
// root), so the same launcher on the same base gives the same digest.
// /weir is made writable by every user (mode 1777, as /tmp), so the
// launcher can lay out the contract under any user the pod runs as.
//
// binary must be a statically linked Linux executable (CGO_ENABLED=0) for
// the image's architecture; one for another machine, or one needing a
// dynamic loader, is refused. An image without an architecture takes the
// binary's.
//
// The kubernetes backend derives a step's image this way, after the code
// folder's layer when the step has one (plugins/docker's Derive), names it
// by its digest and pushes it to its registry (go-containerregistry's
// remote.Write); the Job's container runs it with the launcher's flags and
// the step's command as arguments:
//
//	args: [-bucket, s3://BUCKET, -prefix, runs/RUN/STEP/ATTEMPT, --, python, train.py]
func AddToImage(base v1.Image, binary []byte) (v1.Image, error) {
	arch, err := checkBinary(binary)
	if err != nil {
		return nil, err
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's config: %w", err)
	}
	if cf.Architecture != "" && cf.Architecture != arch {
		return nil, fmt.Errorf("the launcher is built for %s, the image is for %s: build it with GOARCH=%s", arch, cf.Architecture, cf.Architecture)
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("the image is for %s: the launcher runs on linux only", cf.OS)
	}
	layer, err := launcherLayer(binary)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer,
		History: v1.History{CreatedBy: "weir: launcher at " + Path, Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, err
	}
	if cf, err = img.ConfigFile(); err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{Path}
	cf.Config.Cmd = nil
	return mutate.ConfigFile(img, cf)
}

// checkBinary returns the GOARCH of a static Linux executable.
func checkBinary(b []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("the launcher is not a Linux executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("the launcher is not an executable (%s)", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("the launcher is dynamically linked: build it with CGO_ENABLED=0")
		}
	}
	arch := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
		elf.EM_ARM: "arm", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64", elf.EM_LOONGARCH: "loong64"}[f.Machine]
	if f.Machine == elf.EM_PPC64 {
		arch = "ppc64"
		if f.ByteOrder == binary.LittleEndian {
			arch = "ppc64le"
		}
	}
	if arch == "" {
		return "", fmt.Errorf("the launcher is built for %s, which weir does not know", f.Machine)
	}
	return arch, nil
}

// launcherLayer is the tar of /weir/ (1777), /weir/bin/ and the launcher.
func launcherLayer(binary []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: Root[1:] + "/", Mode: 0o1777},
		{Typeflag: tar.TypeDir, Name: Root[1:] + "/bin/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: Path[1:], Mode: 0o755, Size: int64(len(binary))},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		return nil, err
	}
	return plainLayer{l}, nil
}

// plainLayer hides the tarball layer's descriptor, whose empty annotations
// map makes an image's Manifest() differ from its parsed RawManifest()
// (validate.Image refuses such an image).
type plainLayer struct{ v1.Layer }
