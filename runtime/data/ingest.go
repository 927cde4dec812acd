package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"weir.dev/weir/schema"
)

// ErrDigestMismatch marks ingested content whose sha256 is not the one the
// source pins. Test for it with errors.Is.
var ErrDigestMismatch = errors.New("content does not match the pinned sha256")

// Ingested describes the file Ingest wrote.
type Ingested struct {
	// Path is where the content was written (the dst argument).
	Path string `json:"path"`
	// Digest is "sha256:" and the content's 64 lowercase hex digits.
	Digest string `json:"digest"`
	// Size is the content's length in bytes.
	Size int64 `json:"size"`
}

// IngestOption configures Ingest.
type IngestOption func(*ingestOptions)

type ingestOptions struct {
	client *http.Client
}

// WithHTTPClient makes Ingest fetch http sources with c instead of
// http.DefaultClient.
func WithHTTPClient(c *http.Client) IngestOption {
	return func(o *ingestOptions) { o.client = c }
}

// Ingest copies the content of src to the file dst and returns its digest
// and size.
//
// Kinds: "file" reads src.URI, a path relative to projectDir unless it is
// absolute (a file:// URL is read as its path); "http" fetches src.URI, an
// http or https URL, with a GET bound to ctx, and a response outside 2xx is
// an error naming the URL and the status. "s3" and "sql" return an error
// wrapping ErrUnsupported. When src.SHA256 is set (64 hex digits, an
// optional "sha256:" prefix) the content must have that digest, else the
// error wraps ErrDigestMismatch and names both digests.
//
// dst is written atomically: the content goes to a temporary file beside
// it, is synced, and is renamed over dst only once complete and verified,
// so dst is either absent, its old content, or the whole new content. Its
// parent directory is created if needed. On error the Ingested is zero.
func Ingest(ctx context.Context, src schema.Source, projectDir, dst string, opts ...IngestOption) (Ingested, error) {
	o := ingestOptions{client: http.DefaultClient}
	for _, opt := range opts {
		opt(&o)
	}
	want, err := pinnedDigest(src.SHA256)
	if err != nil {
		return Ingested{}, err
	}
	var (
		body io.ReadCloser
		name string // the source, for messages
	)
	switch src.Kind {
	case "file":
		body, name, err = openFileSource(ctx, src.URI, projectDir)
	case "http", "https":
		body, name, err = get(ctx, o.client, src.URI)
	case "s3", "sql":
		return Ingested{}, fmt.Errorf("source kind %q is %w", src.Kind, ErrUnsupported)
	default:
		return Ingested{}, fmt.Errorf("unknown source kind %q (want file, http, s3 or sql)", src.Kind)
	}
	if err != nil {
		return Ingested{}, err
	}
	defer body.Close()
	return writeAtomic(ctx, body, name, dst, want)
}

// pinnedDigest normalises a pinned sha256 to lowercase hex, "" when unset.
func pinnedDigest(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	h := strings.ToLower(strings.TrimPrefix(s, "sha256:"))
	if _, err := hex.DecodeString(h); err != nil || len(h) != 2*sha256.Size {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return h, nil
}

func openFileSource(ctx context.Context, uri, projectDir string) (io.ReadCloser, string, error) {
	path := uri
	if strings.HasPrefix(uri, "file://") {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, "", fmt.Errorf("file source %q: %w", uri, err)
		}
		path = u.Path
	}
	if path == "" {
		return nil, "", errors.New("file source has no uri")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(projectDir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, "", fmt.Errorf("file source %s is a directory", path)
	}
	return ctxReadCloser{ctx, f}, path, nil
}

// ctxReadCloser stops reading once ctx ends.
type ctxReadCloser struct {
	ctx context.Context
	io.ReadCloser
}

func (r ctxReadCloser) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadCloser.Read(p)
}

func get(ctx context.Context, client *http.Client, uri string) (io.ReadCloser, string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", fmt.Errorf("http source: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", fmt.Errorf("http source %s: scheme must be http or https", u.Redacted())
	}
	name := u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// Do's errors quote the URL, user info and all; say it once, redacted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("GET %s: %w", name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		return nil, "", fmt.Errorf("GET %s: %s", name, resp.Status)
	}
	return resp.Body, name, nil
}

// writeAtomic copies r to dst through a temporary file, checking the digest
// when want is set.
func writeAtomic(ctx context.Context, r io.Reader, name, dst, want string) (Ingested, error) {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Ingested{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".ingest-*")
	if err != nil {
		return Ingested{}, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), r, make([]byte, 256<<10))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Ingested{}, fmt.Errorf("read %s: %w", name, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return Ingested{}, fmt.Errorf("%s: %w: got sha256:%s, want sha256:%s", name, ErrDigestMismatch, got, want)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return Ingested{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Ingested{}, err
	}
	if err := tmp.Close(); err != nil {
		return Ingested{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		done = true
		return Ingested{}, err
	}
	done = true
	return Ingested{Path: dst, Digest: "sha256:" + got, Size: n}, nil
}
