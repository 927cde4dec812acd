package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only digest algorithm of the store; digests are
// Algorithm + ":" + 64 lowercase hex digits.
const Algorithm = "sha256"

// ErrMissing is wrapped by errors about a blob that is not in the store.
var ErrMissing = errors.New("blob is missing from the artifact store")

// ErrCorrupt is wrapped by errors about a blob whose content does not match
// its digest (or whose size does not match the size recorded for it).
var ErrCorrupt = errors.New("blob content does not match its digest")

// staleTemp is how old a temp file of a live process must be before CleanTemp
// removes it anyway (its pid may have been reused).
const staleTemp = 24 * time.Hour

// copyBuffer is the buffer size for copies and hashing; large buffers keep
// the per-call overhead of io.Copy well below the cost of sha256.
const copyBuffer = 1 << 20

// Store is a content-addressed store rooted at one folder. The zero value is
// not usable; call Open.
type Store struct {
	root string
}

// Object describes a blob as PutPath stored it.
type Object struct {
	// Digest is "sha256:<hex>" of the blob (for a directory, of its tar).
	Digest string
	// Size is the blob's size in bytes (for a directory, of its tar).
	Size int64
	// IsDir reports that the blob is a directory tree; the caller keeps it
	// and passes it back to Materialize.
	IsDir bool
}

// Open opens the store at root (normally <project>/.weir/artifacts),
// creating its folders if needed, and removes leftovers of interrupted writes
// (see CleanTemp).
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("artifact store: no root folder given")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", root, err)
	}
	s := &Store{root: abs}
	for _, dir := range []string{s.blobRoot(), s.tmpDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("artifact store: cannot create %s: %w", dir, err)
		}
	}
	if err := s.CleanTemp(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root returns the absolute path of the store's root folder.
func (s *Store) Root() string { return s.root }

func (s *Store) blobRoot() string { return filepath.Join(s.root, Algorithm) }
func (s *Store) tmpDir() string   { return filepath.Join(s.root, "tmp") }

func (s *Store) blobPath(hexDigest string) string {
	return filepath.Join(s.blobRoot(), hexDigest[:2], hexDigest)
}

// ParseDigest checks that d is "sha256:" followed by 64 lowercase hex digits
// and returns the hex part.
func ParseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, Algorithm+":")
	if !ok {
		return "", fmt.Errorf("invalid artifact digest %q: it must start with %q", d, Algorithm+":")
	}
	if len(h) != 2*sha256.Size {
		return "", fmt.Errorf("invalid artifact digest %q: want %d hex digits after %q, got %d", d, 2*sha256.Size, Algorithm+":", len(h))
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("invalid artifact digest %q: %q is not a lowercase hex digit", d, c)
		}
	}
	return h, nil
}

// Path returns where the blob of digest lives (whether or not it is there).
// It fails only for a malformed digest. Callers must not write to the path.
func (s *Store) Path(digest string) (string, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return s.blobPath(h), nil
}

// Has reports whether the store holds a blob for digest. It does not check
// the content; see Check and Verify.
func (s *Store) Has(digest string) bool {
	p, err := s.Path(digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Put stores everything r yields and returns its digest and size. The blob
// is written to a temp file inside the store, synced and renamed into place,
// so a reader never sees a partial blob; content already in the store is kept
// as it is (the temp file is dropped). Blobs are read-only (0444).
func (s *Store) Put(r io.Reader) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(s.tmpDir(), "put-"+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	buf := make([]byte, copyBuffer)
	size, err = io.CopyBuffer(io.MultiWriter(tmp, h), r, buf)
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: writing %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("artifact store: syncing %s: %w", tmpName, err)
	}
	if err = tmp.Chmod(0o444); err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("artifact store: closing %s: %w", tmpName, err)
	}
	hx := hex.EncodeToString(h.Sum(nil))
	digest = Algorithm + ":" + hx
	final := s.blobPath(hx)
	if fi, serr := os.Stat(final); serr == nil && fi.Mode().IsRegular() && fi.Size() == size {
		// Already stored: de-duplicated. A blob of the wrong size is
		// damaged and is replaced below.
		os.Remove(tmpName)
		return digest, size, nil
	}
	dir := filepath.Dir(final)
	if err = os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	if err = os.Rename(tmpName, final); err != nil {
		return "", 0, fmt.Errorf("artifact store: moving blob into place: %w", err)
	}
	// Make the rename itself durable.
	if err = syncDir(dir); err != nil {
		return "", 0, err
	}
	return digest, size, nil
}

// PutFile stores the regular file at path. It hashes the file first and
// skips the copy when the store already holds its content.
func (s *Store) PutFile(path string) (digest string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("artifact store: %s is not a regular file", path)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, copyBuffer))
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: reading %s: %w", path, err)
	}
	hx := hex.EncodeToString(h.Sum(nil))
	if bfi, serr := os.Stat(s.blobPath(hx)); serr == nil && bfi.Size() == n {
		return Algorithm + ":" + hx, n, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	return s.Put(f)
}

// PutPath stores the file or directory at path. A directory is stored as a
// deterministic tar (see the package documentation); it may hold regular
// files, directories and relative symbolic links that stay inside it, and
// nothing else.
func (s *Store) PutPath(path string) (Object, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Object{}, fmt.Errorf("artifact store: %w", err)
	}
	switch {
	case fi.Mode().IsRegular():
		d, n, err := s.PutFile(path)
		return Object{Digest: d, Size: n}, err
	case fi.IsDir():
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, path)) }()
		d, n, err := s.Put(pr)
		pr.CloseWithError(errors.New("artifact store: put ended"))
		if err != nil {
			return Object{}, err
		}
		return Object{Digest: d, Size: n, IsDir: true}, nil
	}
	return Object{}, fmt.Errorf("artifact store: %s is neither a regular file nor a directory (%s)", path, fi.Mode().Type())
}

// Materialize copies the blob of digest to dst: a file (mode 0644, parent
// folders created, an existing file replaced) or, when isDir, a directory
// extracted from the blob's tar (dst must not exist or be an empty folder).
// dst is always a copy the caller may modify, never a link into the store.
// The content is hashed as it is copied: a blob that does not match its
// digest fails with an error wrapping ErrCorrupt and dst is removed.
func (s *Store) Materialize(digest, dst string, isDir bool) (err error) {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	src, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifact %s: %w (expected at %s)", digest, ErrMissing, p)
	}
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer src.Close()
	h := sha256.New()
	r := io.TeeReader(src, h)
	if isDir {
		err = extractTar(r, dst)
	} else {
		err = copyFile(r, dst)
	}
	if err == nil {
		// Drain what the tar reader left (end-of-archive padding) so the
		// hash covers the whole blob.
		_, err = io.CopyBuffer(io.Discard, r, make([]byte, 64<<10))
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); Algorithm+":"+got != digest {
			err = fmt.Errorf("artifact %s at %s: %w (it hashes to %s:%s); delete the file and re-run the step that produced it", digest, p, ErrCorrupt, Algorithm, got)
		}
	}
	if err != nil {
		os.RemoveAll(dst)
		if isDir && !errors.Is(err, ErrCorrupt) {
			// A damaged blob can fail extraction in many ways (a bad
			// header, a short file): say it is damaged when it is.
			if verr := s.Verify(digest); errors.Is(verr, ErrCorrupt) {
				return verr
			}
			if errors.Is(err, errBadTar) {
				return fmt.Errorf("artifact %s at %s: %w (%v)", digest, p, ErrCorrupt, err)
			}
		}
		return err
	}
	return nil
}

func copyFile(r io.Reader, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	// Remove first: dst may be a read-only file from an earlier attempt.
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	if _, err := io.CopyBuffer(f, r, make([]byte, copyBuffer)); err != nil {
		f.Close()
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	return nil
}

// Check is the fast check for plan time: the blob exists and has the given
// size. It reads no content; see Verify. Errors wrap ErrMissing or ErrCorrupt.
func (s *Store) Check(digest string, size int64) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifact %s: %w (expected at %s)", digest, ErrMissing, p)
	}
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("artifact %s at %s: %w (not a regular file)", digest, p, ErrCorrupt)
	}
	if fi.Size() != size {
		return fmt.Errorf("artifact %s at %s: %w (size is %d bytes, recorded as %d)", digest, p, ErrCorrupt, fi.Size(), size)
	}
	return nil
}

// Verify re-hashes the blob of digest. It returns nil when the content
// matches, and otherwise an error wrapping ErrMissing or ErrCorrupt.
func (s *Store) Verify(digest string) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifact %s: %w (expected at %s)", digest, ErrMissing, p)
	}
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, copyBuffer)); err != nil {
		return fmt.Errorf("artifact store: reading %s: %w", p, err)
	}
	if got := Algorithm + ":" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("artifact %s at %s: %w (it hashes to %s); delete the file and re-run the step that produced it", digest, p, ErrCorrupt, got)
	}
	return nil
}

// Digests lists the digests of every blob in the store, in lexical order.
// Files in the store that are not blobs are ignored.
func (s *Store) Digests() ([]string, error) {
	var out []string
	err := s.walkBlobs(func(digest, _ string, _ fs.FileInfo) error {
		out = append(out, digest)
		return nil
	})
	return out, err
}

// GC removes every blob for which keep returns false and reports how many
// blobs it removed and how many bytes that freed. It must not run while
// another process writes to the store (run it under the state lock).
func (s *Store) GC(keep func(digest string) bool) (removed int, freed int64, err error) {
	err = s.walkBlobs(func(digest, path string, fi fs.FileInfo) error {
		if keep(digest) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("artifact store: %w", err)
		}
		removed++
		freed += fi.Size()
		return nil
	})
	if err != nil {
		return removed, freed, err
	}
	// Drop shard folders left empty; os.Remove refuses non-empty ones.
	shards, _ := os.ReadDir(s.blobRoot())
	for _, sh := range shards {
		if sh.IsDir() {
			os.Remove(filepath.Join(s.blobRoot(), sh.Name()))
		}
	}
	return removed, freed, nil
}

func (s *Store) walkBlobs(fn func(digest, path string, fi fs.FileInfo) error) error {
	shards, err := os.ReadDir(s.blobRoot())
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		dir := filepath.Join(s.blobRoot(), sh.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("artifact store: %w", err)
		}
		for _, e := range ents {
			digest := Algorithm + ":" + e.Name()
			if _, err := ParseDigest(digest); err != nil || e.Name()[:2] != sh.Name() || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if err := fn(digest, filepath.Join(dir, e.Name()), fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// CleanTemp removes leftovers of interrupted writes from root/tmp: temp files
// whose writing process (named in the file name) is no longer running on
// this machine, and any temp file untouched for a day. Open calls it.
func (s *Store) CleanTemp() error {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(s.tmpDir(), e.Name())
		if stale(e) {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("artifact store: removing leftover %s: %w", p, err)
			}
		}
	}
	return nil
}

func stale(e fs.DirEntry) bool {
	fi, err := e.Info()
	if err != nil {
		return false
	}
	if time.Since(fi.ModTime()) > staleTemp {
		return true
	}
	// put-<pid>-<random>
	rest, ok := strings.CutPrefix(e.Name(), "put-")
	if !ok {
		return true
	}
	pidText, _, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return false
	}
	return !processAlive(pid)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) && !isSyncUnsupported(err) {
		return fmt.Errorf("artifact store: syncing %s: %w", dir, err)
	}
	return nil
}
