package artifact

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// errBadTar marks a directory blob that is not a tar Weir could have
// written: Materialize reports it as ErrCorrupt.
var errBadTar = errors.New("not a directory archive written by weir")

// epoch is the modification time of every tar entry.
var epoch = time.Unix(0, 0).UTC()

// writeTar writes the deterministic tar of the tree at root to w: entries in
// lexical path order (filepath.WalkDir's order), names relative to root with
// "/" separators, zero times, uid and gid 0, no user or group names, and
// fixed modes (0755 for folders and executable files, 0644 for other files,
// 0777 for symbolic links).
func writeTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		hdr := &tar.Header{Name: name, ModTime: epoch, Uid: 0, Gid: 0}
		switch t := d.Type(); {
		case t.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			hdr.Mode = 0o755
			return tw.WriteHeader(hdr)
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Mode = 0o644
			if fi.Mode().Perm()&0o111 != 0 {
				hdr.Mode = 0o755
			}
			hdr.Size = fi.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if n != hdr.Size {
				return fmt.Errorf("%s changed while it was being stored (size %d, read %d bytes)", p, hdr.Size, n)
			}
			return nil
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !linkStaysInside(name, filepath.ToSlash(target)) {
				return fmt.Errorf("%s is a symbolic link to %s, outside the output folder %s; outputs may only link inside themselves", p, target, root)
			}
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = filepath.ToSlash(target)
			hdr.Mode = 0o777
			return tw.WriteHeader(hdr)
		default:
			return fmt.Errorf("%s is a %s; outputs may hold only files, folders and symbolic links", p, t.Type())
		}
	})
	if err != nil {
		return fmt.Errorf("artifact store: storing folder %s: %w", root, err)
	}
	return tw.Close()
}

// linkStaysInside reports whether a symbolic link at name (slash-separated,
// relative to the tree's root) pointing to target resolves inside the tree.
func linkStaysInside(name, target string) bool {
	if target == "" || path.IsAbs(target) || strings.HasPrefix(target, `\`) || filepath.VolumeName(target) != "" {
		return false
	}
	resolved := path.Join(path.Dir(name), target)
	return resolved != "." && resolved != ".." && !strings.HasPrefix(resolved, "../")
}

// extractTar unpacks a tar written by writeTar into dst, which must not exist
// or be an empty folder. Every write goes through an os.Root, so no entry can
// reach outside dst, even through a symbolic link.
func extractTar(r io.Reader, dst string) error {
	if ents, err := os.ReadDir(dst); err == nil {
		if len(ents) > 0 {
			return fmt.Errorf("materializing %s: the folder exists and is not empty", dst)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("materializing %s: %w", dst, err)
		}
	} else {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("materializing %s: %w", dst, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errBadTar, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if !filepath.IsLocal(filepath.FromSlash(name)) || strings.Contains(name, `\`) {
			return fmt.Errorf("%w: entry %q escapes its folder", errBadTar, hdr.Name)
		}
		local := filepath.FromSlash(name)
		if parent := filepath.Dir(local); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("materializing %s: %w", dst, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(local, 0o755); err != nil {
				return fmt.Errorf("materializing %s: %w", dst, err)
			}
		case tar.TypeReg:
			mode := os.FileMode(0o644)
			if hdr.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("materializing %s: %w", dst, err)
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("materializing %s: %w", filepath.Join(dst, local), err)
			}
		case tar.TypeSymlink:
			if !linkStaysInside(name, hdr.Linkname) {
				return fmt.Errorf("%w: link %q points outside its folder", errBadTar, hdr.Name)
			}
			if err := root.Symlink(filepath.FromSlash(hdr.Linkname), local); err != nil {
				return fmt.Errorf("materializing %s: %w", dst, err)
			}
		default:
			return fmt.Errorf("%w: entry %q has type %q", errBadTar, hdr.Name, hdr.Typeflag)
		}
	}
}
