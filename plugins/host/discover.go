package host

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Prefix starts the file name of every backend plugin: weir-backend-KIND.
const Prefix = "weir-backend-"

// kindPattern is the spec's pattern for a backend kind.
var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Found is a plugin executable found on the search path.
type Found struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	// Shadowed are executables of the same kind further down the search
	// path, which are not used.
	Shadowed []string `json:"shadowed,omitempty"`
}

// SearchPath is where plugins are looked for, in order: the project's
// .weir/plugins, the folders of $WEIR_PLUGIN_PATH, then those of $PATH.
func SearchPath(projectDir string) []string {
	dirs := []string{filepath.Join(projectDir, ".weir", "plugins")}
	for _, v := range []string{"WEIR_PLUGIN_PATH", "PATH"} {
		for _, d := range filepath.SplitList(os.Getenv(v)) {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// Discover lists the plugins in dirs, by kind; the first executable of a
// kind wins. Unreadable folders are skipped.
func Discover(dirs []string) []Found {
	byKind := map[string]*Found{}
	var order []string
	seen := map[string]bool{}
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil || seen[abs] {
			continue
		}
		seen[abs] = true
		ents, err := os.ReadDir(abs)
		if err != nil {
			continue
		}
		for _, e := range ents {
			kind, ok := strings.CutPrefix(e.Name(), Prefix)
			if !ok || !kindPattern.MatchString(kind) {
				continue
			}
			p := filepath.Join(abs, e.Name())
			if !executable(p) {
				continue
			}
			if f := byKind[kind]; f != nil {
				f.Shadowed = append(f.Shadowed, p)
				continue
			}
			byKind[kind] = &Found{Kind: kind, Path: p}
			order = append(order, kind)
		}
	}
	sort.Strings(order)
	out := make([]Found, len(order))
	for i, k := range order {
		out[i] = *byKind[k]
	}
	return out
}

// Find returns the plugin of a kind on the search path.
func Find(dirs []string, kind string) (Found, bool) {
	for _, f := range Discover(dirs) {
		if f.Kind == kind {
			return f, true
		}
	}
	return Found{}, false
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// FileSHA256 returns the hex sha256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
