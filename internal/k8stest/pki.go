package k8stest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// certSpec is one certificate the PKI signs with its CA.
type certSpec struct {
	name   string // file stem: NAME.crt, NAME.key
	cn     string
	org    []string
	server bool // serverAuth with the loopback SANs, else clientAuth
}

// The certificates of a cluster. Every one lives for a day: the PKI is
// thrown away with the cluster's folder.
var certSpecs = []certSpec{
	{name: "apiserver", cn: "kube-apiserver", server: true},
	{name: "kwok-serving", cn: "kwok", server: true},
	{name: "admin", cn: "weir-admin", org: []string{"system:masters"}},
	{name: "controller-manager", cn: "system:kube-controller-manager"},
	{name: "scheduler", cn: "system:kube-scheduler"},
	{name: "kwok", cn: "kwok", org: []string{"system:masters"}},
	{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", org: []string{"system:masters"}},
}

const certLifetime = 24 * time.Hour

// genPKI writes a throwaway CA, the certificates above and a service
// account key pair into dir/pki, with ECDSA P-256 keys (fast to generate).
func genPKI(dir string) error {
	p := filepath.Join(dir, "pki")
	if err := os.MkdirAll(p, 0o700); err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour) // tolerate a little clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weir-k8stest-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(certLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePair(p, "ca", caDER, caKey); err != nil {
		return err
	}
	for _, s := range certSpecs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: s.cn, Organization: s.org},
			NotBefore:             now,
			NotAfter:              now.Add(certLifetime),
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if s.server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			// 10.0.0.1 is the kubernetes Service's address in
			// --service-cluster-ip-range.
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default",
				"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePair(p, s.name, der, key); err != nil {
			return err
		}
	}
	// The service account token signer (ES256) and its public key.
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(p, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+".key"), key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}), 0o600)
}

// writeKubeconfig writes a kubeconfig for the client certificate NAME in
// dir/pki, with the CA and the credentials inlined so the file can be
// copied anywhere.
func writeKubeconfig(dir, name, server string) (string, error) {
	p := filepath.Join(dir, "pki")
	data := map[string]string{}
	for _, f := range []string{"ca.crt", name + ".crt", name + ".key"} {
		b, err := os.ReadFile(filepath.Join(p, f))
		if err != nil {
			return "", err
		}
		data[f] = base64.StdEncoding.EncodeToString(b)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `apiVersion: v1
kind: Config
clusters:
- name: weir-k8stest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: weir-k8stest
  context:
    cluster: weir-k8stest
    user: %s
current-context: weir-k8stest
`, server, data["ca.crt"], name, data[name+".crt"], data[name+".key"], name)
	path := filepath.Join(dir, name+".kubeconfig")
	return path, os.WriteFile(path, []byte(sb.String()), 0o600)
}
