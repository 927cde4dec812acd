package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"weir.dev/weir/schema"
)

const csvContent = "id,tenure\nC1,3\nC2,5\n"

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestIngestFile(t *testing.T) {
	project := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(project, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(project, "data", "c.csv"), []byte(csvContent), 0o644))
	dst := filepath.Join(t.TempDir(), "out", "c.csv")

	got, err := Ingest(context.Background(), schema.Source{Kind: "file", URI: "data/c.csv"}, project, dst)
	require.NoError(t, err)
	assert.Equal(t, Ingested{Path: dst, Digest: "sha256:" + digestOf(csvContent), Size: int64(len(csvContent))}, got)
	b, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, csvContent, string(b))
	fi, err := os.Stat(dst)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// An absolute path ignores projectDir; a pinned digest is checked.
	abs := filepath.Join(project, "data", "c.csv")
	got, err = Ingest(context.Background(), schema.Source{Kind: "file", URI: abs, SHA256: digestOf(csvContent)}, "/nonexistent", dst)
	require.NoError(t, err)
	assert.Equal(t, int64(len(csvContent)), got.Size)

	_, err = Ingest(context.Background(), schema.Source{Kind: "file", URI: "data/absent.csv"}, project, dst)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestIngestFileDigestMismatchLeavesDstAlone(t *testing.T) {
	project := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(project, "c.csv"), []byte(csvContent), 0o644))
	dstDir := t.TempDir()
	dst := filepath.Join(dstDir, "c.csv")
	require.NoError(t, os.WriteFile(dst, []byte("old"), 0o644))

	wrong := strings.Repeat("0", 64)
	_, err := Ingest(context.Background(), schema.Source{Kind: "file", URI: "c.csv", SHA256: wrong}, project, dst)
	assert.ErrorIs(t, err, ErrDigestMismatch)
	b, _ := os.ReadFile(dst)
	assert.Equal(t, "old", string(b))
	entries, _ := os.ReadDir(dstDir)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestIngestHTTP(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/c.csv":
			w.Write([]byte(csvContent))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "c.csv")

	t.Run("without sha256", func(t *testing.T) {
		got, err := Ingest(ctx, schema.Source{Kind: "http", URI: srv.URL + "/c.csv"}, "", dst, WithHTTPClient(srv.Client()))
		require.NoError(t, err)
		assert.Equal(t, "sha256:"+digestOf(csvContent), got.Digest)
		b, _ := os.ReadFile(dst)
		assert.Equal(t, csvContent, string(b))
	})
	t.Run("with matching sha256", func(t *testing.T) {
		got, err := Ingest(ctx, schema.Source{Kind: "http", URI: srv.URL + "/c.csv", SHA256: "sha256:" + strings.ToUpper(digestOf(csvContent))}, "", dst)
		require.NoError(t, err)
		assert.Equal(t, int64(len(csvContent)), got.Size)
	})
	t.Run("with another sha256", func(t *testing.T) {
		want := strings.Repeat("ab", 32)
		_, err := Ingest(ctx, schema.Source{Kind: "http", URI: srv.URL + "/c.csv", SHA256: want}, "", filepath.Join(t.TempDir(), "x"))
		assert.ErrorIs(t, err, ErrDigestMismatch)
		assert.EqualError(t, err, srv.URL+"/c.csv: content does not match the pinned sha256: got sha256:"+digestOf(csvContent)+", want sha256:"+want)
	})
	t.Run("not found", func(t *testing.T) {
		_, err := Ingest(ctx, schema.Source{Kind: "http", URI: srv.URL + "/missing.csv"}, "", filepath.Join(t.TempDir(), "x"))
		assert.EqualError(t, err, "GET "+srv.URL+"/missing.csv: 404 Not Found")
	})
	t.Run("credentials are redacted", func(t *testing.T) {
		u := strings.Replace(srv.URL, "http://", "http://user:secret@", 1) + "/missing.csv"
		_, err := Ingest(ctx, schema.Source{Kind: "http", URI: u}, "", filepath.Join(t.TempDir(), "x"))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "secret")
		assert.NotEmpty(t, auth, "the credentials are still sent")
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Ingest(cctx, schema.Source{Kind: "http", URI: srv.URL + "/c.csv"}, "", filepath.Join(t.TempDir(), "x"))
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestIngestRefusals(t *testing.T) {
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "x")
	_, err := Ingest(ctx, schema.Source{Kind: "s3", URI: "s3://bucket/key"}, "", dst)
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.EqualError(t, err, `source kind "s3" is not supported by the local data steps yet`)
	_, err = Ingest(ctx, schema.Source{Kind: "sql", Query: "select 1"}, "", dst)
	assert.EqualError(t, err, `source kind "sql" is not supported by the local data steps yet`)
	_, err = Ingest(ctx, schema.Source{Kind: "ftp"}, "", dst)
	assert.EqualError(t, err, `unknown source kind "ftp" (want file, http, s3 or sql)`)
	_, err = Ingest(ctx, schema.Source{Kind: "http", URI: "ftp://host/x"}, "", dst)
	assert.EqualError(t, err, "http source ftp://host/x: scheme must be http or https")
	_, err = Ingest(ctx, schema.Source{Kind: "file", URI: "x", SHA256: "abc"}, "", dst)
	assert.EqualError(t, err, `sha256 "abc" is not 64 hex digits`)
	_, err = os.Stat(dst)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
