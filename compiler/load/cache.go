package load

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// cacheVersion changes whenever the decoder or the cached shape changes, so
// an older cache entry is never read by a newer weir.
const cacheVersion = "weir-eval-2"

// A cache entry is an evaluated spec in one file: a header line (the cache
// version), the IR with its compiled rules and the spec hash (gob, which,
// unlike the IR's JSON, keeps the rules, integer parameters and source
// offsets), then the source map in a compact form. A re-plan of an unchanged
// spec reads nothing else, so the entry is built for reading fast: the
// source map, the bulk of it, is sorted paths sharing prefixes and
// positions as varints, decoded into one string allocation.
type cacheEntry struct {
	Project  *schema.Project
	SpecHash string
	Sources  schema.SourceMap
}

// cachedIR is the part of an entry gob encodes.
type cachedIR struct {
	Project  *schema.Project
	SpecHash string
}

func init() {
	// Values of `any` fields (parameters, plugin configs, policy data) as
	// the decoder makes them.
	gob.Register([]any{})
	gob.Register(map[string]any{})
	gob.Register(&big.Int{})
	gob.Register(&big.Float{})
	gob.Register([]byte{})
}

// cacheKey digests everything evaluation depends on: the spec files, the
// embedded schema, the shape of the IR (an entry decodes into the IR's Go
// types) and the cache version. Imported packages under cue.mod are
// included, so changing a vendored package re-evaluates.
func cacheKey(dir string, files []*specFile) (string, error) {
	mod, err := moduleDigest(dir)
	if err != nil {
		return "", err
	}
	h := newKeyHash("spec", mod)
	for _, f := range files {
		h.add(f.name, f.src)
	}
	return h.sum(), nil
}

// keyHash digests the parts of a cache key.
type keyHash struct{ h hash.Hash }

// newKeyHash starts a key of the given kind ("spec", "part") with what
// every key depends on.
func newKeyHash(kind, moduleDigest string) keyHash {
	h := keyHash{sha256.New()}
	h.h.Write([]byte(cacheVersion))
	h.h.Write([]byte(irShape()))
	h.h.Write(schema.CUE)
	h.add(kind, []byte(moduleDigest))
	return h
}

func (h keyHash) add(name string, b []byte) {
	h.h.Write([]byte{0})
	h.h.Write([]byte(name))
	h.h.Write([]byte{0})
	binary.Write(h.h, binary.LittleEndian, int64(len(b)))
	h.h.Write(b)
}

func (h keyHash) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// moduleDigest digests the .cue files under cue.mod (the module file and
// vendored packages), which any evaluation may import.
func moduleDigest(dir string) (string, error) {
	h := sha256.New()
	mod := filepath.Join(dir, "cue.mod")
	if _, err := os.Stat(mod); err != nil {
		return "", nil
	}
	err := filepath.WalkDir(mod, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".cue" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel))
		h.Write([]byte{0})
		binary.Write(h, binary.LittleEndian, int64(len(b)))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// irShape describes the Go types of the IR: field names, types and tags.
var irShape = sync.OnceValue(func() string {
	var b strings.Builder
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			if t.Kind() == reflect.Map {
				walk(t.Key())
			}
			walk(t.Elem())
		case reflect.Struct:
			fmt.Fprintf(&b, "%s{", t)
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				fmt.Fprintf(&b, "%s %s %q;", f.Name, f.Type, f.Tag)
			}
			b.WriteString("}\n")
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(reflect.TypeOf(cachedIR{}))
	return b.String()
})

func cachePath(cacheDir, key string) string {
	return filepath.Join(cacheDir, "eval-"+key[:32]+".bin")
}

func readCache(cacheDir, key string) (*cacheEntry, bool) {
	b, err := os.ReadFile(cachePath(cacheDir, key))
	if err != nil {
		return nil, false
	}
	c, err := decodeEntry(b)
	if err != nil {
		return nil, false
	}
	return c, true
}

func encodeEntry(c *cacheEntry) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(cacheVersion + "\n")
	var ir bytes.Buffer
	if err := gob.NewEncoder(&ir).Encode(cachedIR{c.Project, c.SpecHash}); err != nil {
		return nil, err
	}
	buf.Write(binary.AppendUvarint(nil, uint64(ir.Len())))
	buf.Write(ir.Bytes())
	buf.Write(encodeSourceMap(c.Sources))
	return buf.Bytes(), nil
}

func decodeEntry(b []byte) (*cacheEntry, error) {
	b, ok := bytes.CutPrefix(b, []byte(cacheVersion+"\n"))
	if !ok {
		return nil, errBadCache
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, errBadCache
	}
	b = b[w:]
	// The source map (a third of the time) is decoded on another
	// goroutine while gob decodes the IR.
	type decoded struct {
		sm  schema.SourceMap
		err error
	}
	smc := make(chan decoded, 1)
	go func() {
		sm, err := decodeSourceMap(b[n:])
		smc <- decoded{sm, err}
	}()
	var ir cachedIR
	if err := gob.NewDecoder(bytes.NewReader(b[:n])).Decode(&ir); err != nil || ir.Project == nil {
		return nil, errBadCache
	}
	sm := <-smc
	if sm.err != nil {
		return nil, sm.err
	}
	return &cacheEntry{Project: ir.Project, SpecHash: ir.SpecHash, Sources: sm.sm}, nil
}

var errBadCache = errors.New("malformed cache entry")

// encodeSourceMap writes the file names, then the paths, each as
// the length of the prefix it shares with the one before and the rest, and
// its range: file index, start line, column and offset, and the end as a
// flag (0: the end is the start) or the end's line, column and offset.
func encodeSourceMap(sm schema.SourceMap) []byte {
	type entry struct {
		path string
		r    diag.Range
	}
	entries := make([]entry, 0, len(sm))
	// order sorts the entries by where they are written (cheaper than by
	// path, and neighbours then share long prefixes).
	type key struct{ file, offset, i int32 }
	order := make([]key, 0, len(sm))
	fileIndex := map[string]int32{}
	var files []string
	size := 0
	for p, r := range sm {
		fi, ok := fileIndex[r.Filename]
		if !ok {
			fi = int32(len(files))
			fileIndex[r.Filename] = fi
			files = append(files, r.Filename)
		}
		order = append(order, key{fi, int32(r.Start.Offset), int32(len(entries))})
		entries = append(entries, entry{p, r})
		size += len(p)
	}
	slices.SortFunc(order, func(a, b key) int {
		if c := cmp.Compare(a.file, b.file); c != 0 {
			return c
		}
		if c := cmp.Compare(a.offset, b.offset); c != 0 {
			return c
		}
		return strings.Compare(entries[a.i].path, entries[b.i].path)
	})
	out := binary.AppendUvarint(nil, uint64(len(files)))
	for _, f := range files {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	out = binary.AppendUvarint(out, uint64(len(entries)))
	out = binary.AppendUvarint(out, uint64(size))
	put := func(n int) { out = binary.AppendUvarint(out, uint64(n)) }
	prev := ""
	for _, k := range order {
		p, r := entries[k.i].path, entries[k.i].r
		shared := 0
		for shared < len(p) && shared < len(prev) && p[shared] == prev[shared] {
			shared++
		}
		put(shared)
		put(len(p) - shared)
		out = append(out, p[shared:]...)
		put(int(k.file))
		put(r.Start.Line)
		put(r.Start.Column)
		put(r.Start.Offset)
		if r.End == r.Start {
			put(0)
		} else {
			put(1)
			put(r.End.Line)
			put(r.End.Column)
			put(r.End.Offset)
		}
		prev = p
	}
	return out
}

func decodeSourceMap(b []byte) (schema.SourceMap, error) {
	bad := false
	next := func() int {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > math.MaxInt32 {
			bad = true
			return 0
		}
		b = b[w:]
		return int(n)
	}
	bytesOf := func(n int) []byte {
		if n > len(b) {
			bad = true
			return nil
		}
		s := b[:n]
		b = b[n:]
		return s
	}
	files := make([]string, next())
	for i := range files {
		if bad {
			return nil, errBadCache
		}
		files[i] = string(bytesOf(next()))
	}
	count, size := next(), next()
	if bad || count > len(b) || size > 64*len(b)+64 {
		return nil, errBadCache
	}
	// All paths live in one string; each key is a slice of it.
	all := make([]byte, 0, size)
	type entry struct {
		start, end int
		r          diag.Range
	}
	entries := make([]entry, count)
	prevStart, prevEnd := 0, 0
	for i := range entries {
		shared, rest := next(), next()
		if bad || shared > prevEnd-prevStart {
			return nil, errBadCache
		}
		start := len(all)
		all = append(all, all[prevStart:prevStart+shared]...)
		all = append(all, bytesOf(rest)...)
		e := entry{start: start, end: len(all)}
		fi := next()
		if fi >= len(files) {
			return nil, errBadCache
		}
		e.r.Filename = files[fi]
		e.r.Start = diag.Pos{Line: next(), Column: next(), Offset: next()}
		e.r.End = e.r.Start
		if next() != 0 {
			e.r.End = diag.Pos{Line: next(), Column: next(), Offset: next()}
		}
		if bad {
			return nil, errBadCache
		}
		entries[i] = e
		prevStart, prevEnd = e.start, e.end
	}
	if len(b) != 0 {
		return nil, errBadCache
	}
	keys := string(all)
	sm := make(schema.SourceMap, count)
	for _, e := range entries {
		sm[keys[e.start:e.end]] = e.r
	}
	return sm, nil
}

// partPath is where the evaluation of a part (see split.go) is cached.
func partPath(cacheDir, key string) string {
	return filepath.Join(cacheDir, "part-"+key[:32]+".bin")
}

// readPart reads a part's cached IR.
func readPart(cacheDir, key string) (*schema.Project, bool) {
	b, err := os.ReadFile(partPath(cacheDir, key))
	if err != nil {
		return nil, false
	}
	b, ok := bytes.CutPrefix(b, []byte(cacheVersion+"\n"))
	if !ok {
		return nil, false
	}
	var ir cachedIR
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&ir); err != nil || ir.Project == nil {
		return nil, false
	}
	return ir.Project, true
}

// writePart caches a part's IR (atomically; a failure only costs time).
func writePart(cacheDir, key string, p *schema.Project) error {
	var buf bytes.Buffer
	buf.WriteString(cacheVersion + "\n")
	if err := gob.NewEncoder(&buf).Encode(cachedIR{Project: p}); err != nil {
		return err
	}
	return writeAtomic(cacheDir, partPath(cacheDir, key), buf.Bytes())
}

// pruneParts removes the cached parts not in keep.
func pruneParts(cacheDir string, keep map[string]bool) {
	old, _ := filepath.Glob(filepath.Join(cacheDir, "part-*.bin"))
	for _, o := range old {
		if !keep[o] {
			os.Remove(o)
		}
	}
}

// writeAtomic writes dst through a temporary file and a rename.
func writeAtomic(dir, dst string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// writeCache stores an evaluation atomically (temp file + rename). Old
// entries are removed so the folder holds one entry per project.
func writeCache(cacheDir, key string, res *Result) error {
	b, err := encodeEntry(&cacheEntry{Project: res.Project, Sources: res.Sources, SpecHash: res.SpecHash})
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(cacheDir, "eval-*"))
	dst := cachePath(cacheDir, key)
	if err := writeAtomic(cacheDir, dst, b); err != nil {
		return err
	}
	for _, o := range old {
		if o != dst {
			os.Remove(o)
		}
	}
	return nil
}
