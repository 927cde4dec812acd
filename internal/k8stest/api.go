package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// do sends a JSON request to the API server as admin and fails unless the
// status is one of want.
func (c *Cluster) do(ctx context.Context, method, path string, body any, want ...int) error {
	return c.doWith(ctx, method, path, "application/json", body, want...)
}

// doWith is do with the request's content type.
func (c *Cluster) doWith(ctx context.Context, method, path, contentType string, body any, want ...int) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("%s %s: %s: %.300s", method, path, resp.Status, msg)
	}
	return nil
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
