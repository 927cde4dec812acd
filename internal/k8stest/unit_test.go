package k8stest

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseRequestCounts(t *testing.T) {
	in := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="409",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 1.5e+01
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 99
`
	got, err := parseRequestCounts([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"POST jobs": 3, "WATCH pods": 7, "PATCH pods/status": 3, "LIST pods": 15}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseLabelsEscapes(t *testing.T) {
	got, err := parseLabels(`a="x\"y",b="1\\2",c=""`)
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != `x"y` || got["b"] != `1\2` || got["c"] != "" {
		t.Errorf("got %q", got)
	}
	if _, err := parseLabels(`a="open`); err == nil {
		t.Error("an unterminated value parsed")
	}
}

func TestNamespaceName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	for _, name := range []string{"TestJob", "TestJob/GPU_one", "Test" + strings.Repeat("X", 100), "/", "Ünïcode"} {
		got := namespaceName(name)
		if !re.MatchString(got) || len(got) > 63 {
			t.Errorf("namespaceName(%q) = %q: not a DNS label", name, got)
		}
	}
}

func TestCRILog(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	got := string(CRILog(ts, "one\ntwo\n"))
	want := "2026-01-02T03:04:05.000000006Z stdout F one\n2026-01-02T03:04:05.000000006Z stdout F two\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := string(CRILog(ts, "no newline")); !strings.HasSuffix(got, " stdout F no newline\n") {
		t.Errorf("got %q", got)
	}
}

// TestPKI checks that every certificate verifies against the CA for its
// purpose and that the kubeconfigs carry them.
func TestPKI(t *testing.T) {
	dir := t.TempDir()
	if err := genPKI(dir); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, filepath.Join(dir, "pki", "ca.crt")))
	for _, s := range certSpecs {
		cert := readCert(t, filepath.Join(dir, "pki", s.name+".crt"))
		opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if s.server {
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			opts.DNSName = "127.0.0.1"
		}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
		if cert.Subject.CommonName != s.cn || strings.Join(cert.Subject.Organization, ",") != strings.Join(s.org, ",") {
			t.Errorf("%s: subject %v", s.name, cert.Subject)
		}
	}
	kc, err := writeKubeconfig(dir, "admin", "https://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server: https://127.0.0.1:1", "certificate-authority-data: ", "client-key-data: "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, b)
		}
	}
	if _, err := adminClient(dir); err != nil {
		t.Error(err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetSkipsWithoutCluster(t *testing.T) {
	t.Setenv(EnvDir, "")
	t.Setenv(EnvSkip, "")
	t.Setenv("CI", "")
	ran := false
	t.Run("inner", func(t *testing.T) {
		defer func() { ran = true }()
		Get(t)
		t.Error("Get returned without a cluster")
	})
	if !ran {
		t.Error("the subtest did not run")
	}
}
