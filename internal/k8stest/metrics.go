package k8stest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// RequestCounts reads apiserver_request_total from the API server's
// /metrics and sums it by "VERB resource", e.g. "POST jobs", "WATCH pods",
// "LIST pods", "GET pods"; a subresource is kept apart as
// "VERB resource/subresource" ("GET pods/log", "PATCH pods/status").
// Verbs are the API server's (GET, LIST, WATCH, POST, PUT, PATCH, DELETE,
// DELETECOLLECTION, APPLY); a missing key means zero.
//
// The counts cover every client since the API server started: the
// controller manager, the scheduler, kwok, and on the cluster Get shares
// the tests of other packages running at the same time. Compare two calls
// and assert on resources only your test touches, or use a Private cluster.
// A restart of the API server resets them.
func (c *Cluster) RequestCounts(ctx context.Context) (map[string]float64, error) {
	b, code, err := get(ctx, c.client, c.Server+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("k8stest: GET /metrics: %w", err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("k8stest: GET /metrics: HTTP %d: %.200s", code, b)
	}
	return parseRequestCounts(b)
}

// parseRequestCounts sums the apiserver_request_total samples of a
// Prometheus text exposition by verb and resource.
func parseRequestCounts(b []byte) (map[string]float64, error) {
	const metric = "apiserver_request_total{"
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("k8stest: bad metrics line %q", line)
		}
		labels, err := parseLabels(rest[:end])
		if err != nil {
			return nil, fmt.Errorf("k8stest: metrics line %q: %w", line, err)
		}
		fields := strings.Fields(rest[end+1:]) // value [timestamp]
		if len(fields) == 0 {
			return nil, fmt.Errorf("k8stest: metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("k8stest: metrics line %q: %w", line, err)
		}
		key := labels["verb"] + " " + labels["resource"]
		if s := labels["subresource"]; s != "" {
			key += "/" + s
		}
		out[key] += v
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"` with Prometheus escapes (\\, \", \n).
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("bad label list at %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				if s[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated value of label %s", name)
		}
		out[name] = val.String()
		s = strings.TrimPrefix(s[i+1:], ",")
	}
	return out, nil
}
