package docker

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// LocalRegistry is the registry name of the images Weir derives and loads
// into the engine without pushing them anywhere.
const LocalRegistry = "weir.local"

// epoch is the time every entry of a layer Weir makes carries, so the same
// files always make the same layer.
var epoch = time.Unix(0, 0).UTC()

// skipDir reports folders a code folder never carries into an image (the
// same the executor leaves out when it copies the code folder).
func skipDir(name string) bool {
	return name == ".git" || name == "__pycache__" || name == ".weir"
}

// LayerFromDir makes a layer holding the files under dir at the path at
// inside the image (e.g. "weir/code"). The layer is reproducible: entries
// sorted, times fixed at the Unix epoch, owner root, modes reduced to
// 0755 or 0644 (0755 for folders and executables), so the same files give
// the same digest on any machine. Symbolic links are kept as links.
func LayerFromDir(dir, at string) (v1.Layer, error) {
	at = strings.Trim(path.Clean("/"+filepath.ToSlash(at)), "/")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// The folders leading to at, then the tree.
	if at != "" {
		parts := strings.Split(at, "/")
		for i := range parts {
			if err := tw.WriteHeader(dirHeader(strings.Join(parts[:i+1], "/") + "/")); err != nil {
				return nil, err
			}
		}
	}
	var entries []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.IsDir() && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(dir, p)
		entries = append(entries, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	sort.Strings(entries) // WalkDir's order already is; say it, do not rely on it
	for _, rel := range entries {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		name := path.Join(at, rel)
		switch {
		case st.IsDir():
			err = tw.WriteHeader(dirHeader(name + "/"))
		case st.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target,
					Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX})
			}
		case st.Mode().IsRegular():
			mode := int64(0o644)
			if st.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: st.Size(), Mode: mode,
				ModTime: epoch, Format: tar.FormatPAX}); err == nil {
				err = copyFile(tw, p)
			}
		default:
			return nil, fmt.Errorf("%s is neither a file, a folder nor a link", p)
		}
		if err != nil {
			return nil, fmt.Errorf("packaging %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		return nil, err
	}
	return plainLayer{l}, nil
}

// plainLayer hides the tarball layer's descriptor, whose empty annotations
// map makes an image's Manifest() differ from its parsed RawManifest()
// (validate.Image refuses such an image).
type plainLayer struct{ v1.Layer }

func dirHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Derive returns base with one more layer holding the code folder dir at
// /weir/code, started there: the way ko and crane append build images
// without a Dockerfile. The result depends only on base and the files, so
// the same code on the same base gives the same digest.
func Derive(base v1.Image, dir string) (v1.Image, error) {
	layer, err := LayerFromDir(dir, Root+"/code")
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer,
		History: v1.History{CreatedBy: "weir: code folder at " + Root + "/code", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Config.WorkingDir = Root + "/code"
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	return mutate.ConfigFile(img, cf)
}

// DerivedTag names a derived image by its content:
// weir.local/PROJECT/STEP:KEY, or REGISTRY/PROJECT/STEP:KEY when the
// project has a registry. KEY is the start of the image's digest.
func DerivedTag(registry, project, step string, img v1.Image) (name.Tag, error) {
	d, err := img.Digest()
	if err != nil {
		return name.Tag{}, err
	}
	if registry == "" {
		registry = LocalRegistry
	}
	ref := strings.TrimSuffix(registry, "/") + "/" + repoPart(project) + "/" + repoPart(step) + ":" + d.Hex[:24]
	return name.NewTag(ref, name.WeakValidation)
}

var repoInvalid = regexp.MustCompile(`[^a-z0-9]+`)

// repoPart turns an address or a project name into one component of a
// repository name (lower-case letters and digits separated by dashes).
func repoPart(s string) string {
	s = strings.Trim(repoInvalid.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 100 {
		s = strings.TrimRight(s[:100], "-")
	}
	if s == "" {
		s = "step"
	}
	return s
}
