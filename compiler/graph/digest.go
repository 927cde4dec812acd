package graph

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Digester computes content digests of files and code folders, remembering
// them for the life of the value (one plan).
type Digester struct {
	mu    sync.Mutex
	files map[string]string
	dirs  map[string]string
	stats map[string]statResult
}

type statResult struct {
	isDir bool
	err   error
}

// NewDigester returns an empty Digester.
func NewDigester() *Digester {
	return &Digester{files: map[string]string{}, dirs: map[string]string{}, stats: map[string]statResult{}}
}

// stat reports whether name is a folder, remembering the answer: every step
// of a large spec names the same few code folders.
func (d *Digester) stat(name string) (isDir bool, err error) {
	d.mu.Lock()
	r, ok := d.stats[name]
	d.mu.Unlock()
	if ok {
		return r.isDir, r.err
	}
	st, err := os.Stat(name)
	r = statResult{err: err}
	if err == nil {
		r.isDir = st.IsDir()
	}
	d.mu.Lock()
	d.stats[name] = r
	d.mu.Unlock()
	return r.isDir, r.err
}

// File returns "sha256:<hex>" of a file's content.
func (d *Digester) File(name string) (string, error) {
	d.mu.Lock()
	if s, ok := d.files[name]; ok {
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return "", &os.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	s := "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.mu.Lock()
	d.files[name] = s
	d.mu.Unlock()
	return s, nil
}

type dirError string

func (e dirError) Error() string { return string(e) }

const errIsDir = dirError("is a folder, not a file")

// defaultIgnore are never part of a code digest: version control, Weir's own
// folder, and files tools write next to code when it runs.
var defaultIgnore = []string{".git/", ".weir/", "__pycache__/", "*.pyc", ".DS_Store", ".ipynb_checkpoints/"}

// Dir returns the digest of a code folder: every file's path, executable
// bit and content, in path order, skipping defaultIgnore and the patterns of
// a .weirignore file at the folder's root (gitignore-like: one pattern per
// line, # comments, a trailing / matches folders, a leading / anchors to the
// root, ! negates).
func (d *Digester) Dir(root string) (string, error) {
	d.mu.Lock()
	if s, ok := d.dirs[root]; ok {
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	ign := newIgnore(defaultIgnore)
	if f, err := os.Open(filepath.Join(root, ".weirignore")); err == nil {
		sc := bufio.NewScanner(f)
		var pats []string
		for sc.Scan() {
			pats = append(pats, sc.Text())
		}
		f.Close()
		ign.add(pats)
	}
	type entry struct{ rel, sum string }
	var entries []entry
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ign.match(rel, de.IsDir()) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		mode := "-"
		if info.Mode()&0o111 != 0 {
			mode = "x"
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, entry{rel, "l:" + target})
			return nil
		}
		sum, err := d.File(p)
		if err != nil {
			return err
		}
		entries = append(entries, entry{rel, mode + sum})
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	h := sha256.New()
	for _, e := range entries {
		io.WriteString(h, e.rel)
		h.Write([]byte{0})
		io.WriteString(h, e.sum)
		h.Write([]byte{'\n'})
	}
	s := "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.mu.Lock()
	d.dirs[root] = s
	d.mu.Unlock()
	return s, nil
}

type ignorePattern struct {
	pat     string
	dirOnly bool
	anchor  bool
	negate  bool
}

type ignore struct{ pats []ignorePattern }

func newIgnore(p []string) *ignore {
	ig := &ignore{}
	ig.add(p)
	return ig
}

func (ig *ignore) add(lines []string) {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := ignorePattern{}
		if strings.HasPrefix(l, "!") {
			p.negate, l = true, l[1:]
		}
		if strings.HasSuffix(l, "/") {
			p.dirOnly, l = true, strings.TrimSuffix(l, "/")
		}
		if strings.HasPrefix(l, "/") {
			p.anchor, l = true, l[1:]
		} else if strings.Contains(l, "/") {
			p.anchor = true
		}
		p.pat = l
		ig.pats = append(ig.pats, p)
	}
}

// match reports whether rel (slash-separated, relative to the root) is
// ignored; the last matching pattern wins, as in gitignore.
func (ig *ignore) match(rel string, isDir bool) bool {
	ignored := false
	base := path.Base(rel)
	for _, p := range ig.pats {
		if p.dirOnly && !isDir {
			continue
		}
		var ok bool
		if p.anchor {
			ok, _ = path.Match(p.pat, rel)
		} else {
			ok, _ = path.Match(p.pat, base)
		}
		if ok {
			ignored = !p.negate
		}
	}
	return ignored
}
