package artifact

import (
	"fmt"
	"path/filepath"
	"strings"
)

// SafeOutputName returns an error unless name is a relative path that stays
// inside the folder it is joined to: it refuses the empty name, ".", "..",
// absolute paths, names that climb out ("../x", "a/../../x") or that clean to
// the folder itself ("a/.."), backslashes (a separator on Windows, so a spec
// must not depend on them) and NUL bytes.
func SafeOutputName(name string) error {
	refuse := func(why string) error {
		return fmt.Errorf("output name %q %s: use a plain relative name such as \"model\" or \"data/train.csv\"", name, why)
	}
	switch {
	case name == "":
		return fmt.Errorf("output name is empty: use a plain relative name such as \"model\"")
	case strings.ContainsRune(name, 0):
		return refuse("contains a NUL byte")
	case strings.Contains(name, `\`):
		return refuse("contains a backslash")
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return refuse("is an absolute path")
	}
	clean := filepath.Clean(filepath.FromSlash(name))
	if clean == "." {
		return refuse("names the output folder itself")
	}
	if !filepath.IsLocal(clean) {
		return refuse("escapes its folder")
	}
	return nil
}
