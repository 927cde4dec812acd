package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://; the clouds' drivers are in drivers_*.go
	"gocloud.dev/gcerrors"

	"weir.dev/weir/runtime/artifact"
)

// openBucket opens a bucket by its gocloud URL (s3://, gs://, azblob://,
// file://). A file bucket writes its temporary files next to the objects
// (no_tmp_dir), so that a bucket on another mount than the temporary folder
// (a bind mount in a container) works.
func openBucket(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	u, err := url.Parse(bucketURL)
	if err != nil {
		return nil, fmt.Errorf("bucket URL %q: %w", bucketURL, err)
	}
	if u.Scheme == "file" {
		q := u.Query()
		if !q.Has("no_tmp_dir") {
			q.Set("no_tmp_dir", "1")
			u.RawQuery = q.Encode()
		}
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", bucketURL, err)
	}
	return b, nil
}

func notFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

// putBlob uploads the blob of digest from the store, unless the bucket
// holds it already (with its size): content named by its digest is never
// uploaded twice. It reports whether it uploaded.
func putBlob(ctx context.Context, b *blob.Bucket, s *artifact.Store, digest string, size int64) (bool, error) {
	k, err := BlobKey(digest)
	if err != nil {
		return false, err
	}
	if a, err := b.Attributes(ctx, k); err == nil && a.Size == size {
		return false, nil
	} else if err != nil && !notFound(err) {
		return false, fmt.Errorf("looking for %s in the bucket: %w", k, err)
	}
	p, err := s.Path(digest)
	if err != nil {
		return false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return false, fmt.Errorf("artifact %s: %w", digest, err)
	}
	defer f.Close()
	if err := b.Upload(ctx, k, f, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return false, fmt.Errorf("uploading %s: %w", k, err)
	}
	return true, nil
}

// getBlob downloads the blob of want into the store, checking that what
// arrived has the digest and size it should.
func getBlob(ctx context.Context, b *blob.Bucket, s *artifact.Store, want Blob) error {
	k, err := BlobKey(want.Digest)
	if err != nil {
		return err
	}
	if s.Has(want.Digest) && s.Check(want.Digest, want.Size) == nil {
		return nil
	}
	r, err := b.NewReader(ctx, k, nil)
	if notFound(err) {
		return fmt.Errorf("%s is not in the bucket (%s): %w", want.Digest, k, artifact.ErrMissing)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", k, err)
	}
	defer r.Close()
	got, n, err := s.Put(r)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", k, err)
	}
	if got != want.Digest || n != want.Size {
		return fmt.Errorf("%s in the bucket holds %s (%d bytes), not %s (%d bytes): %w", k, got, n, want.Digest, want.Size, artifact.ErrCorrupt)
	}
	return nil
}

func readJSON(ctx context.Context, b *blob.Bucket, k string, v any) error {
	data, err := b.ReadAll(ctx, k)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

func writeJSON(ctx context.Context, b *blob.Bucket, k string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := b.WriteAll(ctx, k, append(data, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("writing %s: %w", k, err)
	}
	return nil
}

// closeBucket closes b, keeping the first error.
func closeBucket(b *blob.Bucket, err *error) {
	if cerr := b.Close(); cerr != nil && *err == nil && !errors.Is(cerr, context.Canceled) {
		*err = cerr
	}
}
