package k8stest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster is a running test control plane: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok on 127.0.0.1, started
// by Up from one folder that holds its PKI, kubeconfigs, etcd data, logs
// (NAME.log), PID files (NAME.pid) and state file (cluster.json).
type Cluster struct {
	Dir        string // the cluster's folder
	Kubeconfig string // the admin kubeconfig (group system:masters), credentials inlined
	BinDir     string // where the binaries came from (hack/k8s/build.sh's folder)
	Server     string // the API server's URL, https://127.0.0.1:PORT

	mu       sync.Mutex
	st       state
	children map[int]*child // daemons this process started, by PID
	client   *http.Client   // admin client certificate, trusts the cluster's CA
}

// state is the cluster.json file: what Attach, Down and RestartAPIServer
// need to find and restart the daemons.
type state struct {
	BinDir  string         `json:"binDir"`
	Server  string         `json:"server"`
	Ports   map[string]int `json:"ports"`
	Daemons []daemon       `json:"daemons"` // in start order
	Started time.Time      `json:"started"`
}

const stateFile = "cluster.json"

// The daemons in start order; Down stops them in reverse.
const (
	etcdName      = "etcd"
	apiserverName = "kube-apiserver"
	cmName        = "kube-controller-manager"
	schedName     = "kube-scheduler"
	kwokName      = "kwok"
)

// Up generates a throwaway PKI, starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok from binDir (the folder
// hack/k8s/build.sh prints) on free ports of 127.0.0.1, each in a session
// of its own (setsid) with its PID in dir/NAME.pid and its output in
// dir/NAME.log, creates the kwok nodes (Nodes) and waits until the cluster
// is usable: /readyz answers ok, the default ServiceAccount of namespace
// "default" exists (pods are refused before) and every node is Ready with
// no not-ready taint left.
//
// dir is created when missing; files an earlier cluster left there are
// replaced, but Up refuses a dir whose cluster still runs. Without a
// deadline in ctx, Up gives up after 3 minutes. On error nothing Up started
// is left running, and the error carries the log tail of the daemon that
// failed. Up retries with other ports when one was taken meanwhile.
func Up(ctx context.Context, binDir, dir string) (*Cluster, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
	}
	var err error
	if binDir, err = filepath.Abs(binDir); err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	for _, b := range []string{etcdName, apiserverName, cmName, schedName, kwokName, kwokStages} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("k8stest: %s lacks %s (hack/k8s/build.sh builds it): %w", binDir, b, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if old, err := Attach(dir); err == nil {
		for _, d := range old.st.Daemons {
			if alive(d) {
				return nil, fmt.Errorf("k8stest: a cluster still runs in %s (%s, pid %d): Down it first", dir, d.Name, d.PID)
			}
		}
	}
	for attempt := 1; ; attempt++ {
		c, err := up(ctx, binDir, dir)
		if err == nil {
			return c, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
}

// kwokStages is the stage file build.sh writes beside the binaries.
const kwokStages = "kwok-stages.yaml"

func up(ctx context.Context, binDir, dir string) (_ *Cluster, err error) {
	// Only what an earlier Up wrote here is removed.
	for _, f := range []string{"etcd-data", "pki", "podlogs", "kwok-home", stateFile} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	for _, n := range []string{etcdName, apiserverName, cmName, schedName, kwokName} {
		os.Remove(filepath.Join(dir, n+".log"))
		os.Remove(filepath.Join(dir, n+".pid"))
	}
	started := time.Now()
	ports, err := freePorts("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir:      dir,
		BinDir:   binDir,
		Server:   fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"]),
		children: map[int]*child{},
	}
	c.st = state{BinDir: binDir, Server: c.Server, Ports: ports, Started: started}
	if err := genPKI(dir); err != nil {
		return nil, fmt.Errorf("k8stest: PKI: %w", err)
	}
	kc := map[string]string{}
	for _, n := range []string{"admin", "controller-manager", "scheduler", "kwok"} {
		if kc[n], err = writeKubeconfig(dir, n, c.Server); err != nil {
			return nil, err
		}
	}
	c.Kubeconfig = kc["admin"]
	if c.client, err = adminClient(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.stopAll()
		}
	}()
	pki := func(f string) string { return filepath.Join(dir, "pki", f) }
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"])

	if err := c.start(etcdName, []string{
		"--name=weir", "--data-dir=" + filepath.Join(dir, "etcd-data"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=weir=" + peerURL,
		// A test cluster's data is thrown away: no fsync spares the
		// loaded machine's disk.
		"--unsafe-no-fsync", "--log-level=warn",
	}); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, etcdName, "etcd /health", func() bool {
		return httpOK(ctx, plainClient, etcdURL+"/health", `"health":"true"`)
	}); err != nil {
		return nil, err
	}

	if err := c.start(apiserverName, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports["apiserver"]),
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"), "--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC", "--allow-privileged=true",
		// Pod logs: the API server asks the node's kubelet endpoint,
		// which is kwok's server on 127.0.0.1 (kwok nodes' InternalIP).
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--profiling=false",
	}); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, apiserverName, "kube-apiserver /readyz", func() bool {
		return httpOK(ctx, c.client, c.Server+"/readyz", "ok")
	}); err != nil {
		return nil, err
	}

	if err := c.installLogCRDs(ctx); err != nil {
		return nil, err
	}
	if err := c.start(cmName, []string{
		"--kubeconfig=" + kc["controller-manager"],
		"--authentication-kubeconfig=" + kc["controller-manager"],
		"--authorization-kubeconfig=" + kc["controller-manager"],
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports["controller-manager"]),
		"--leader-elect=false", "--use-service-account-credentials=true",
		"--service-account-private-key-file=" + pki("sa.key"), "--root-ca-file=" + pki("ca.crt"),
		"--cluster-signing-cert-file=" + pki("ca.crt"), "--cluster-signing-key-file=" + pki("ca.key"),
		// kwok renews node leases every 10s; on a loaded machine it may
		// lag, and a node marked NotReady would get its pods evicted.
		"--node-monitor-grace-period=2m",
		"--profiling=false",
	}); err != nil {
		return nil, err
	}
	if err := c.start(schedName, []string{
		"--kubeconfig=" + kc["scheduler"],
		"--authentication-kubeconfig=" + kc["scheduler"],
		"--authorization-kubeconfig=" + kc["scheduler"],
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports["scheduler"]),
		"--leader-elect=false",
		"--profiling=false",
	}); err != nil {
		return nil, err
	}
	if err := c.start(kwokName, []string{
		"--config=" + filepath.Join(binDir, kwokStages),
		"--enable-crds=Logs,ClusterLogs",
		"--kubeconfig=" + kc["kwok"],
		"--manage-all-nodes=false", "--manage-nodes-with-label-selector=" + LabelType + "=" + LabelTypeKwok,
		"--node-ip=127.0.0.1", "--node-port=" + strconv.Itoa(ports["kwok"]),
		"--server-address=127.0.0.1:" + strconv.Itoa(ports["kwok"]),
		"--tls-cert-file=" + pki("kwok-serving.crt"), "--tls-private-key-file=" + pki("kwok-serving.key"),
		"--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40",
	}, "HOME="+filepath.Join(dir, "kwok-home")); err != nil { // kwok would load ~/.kwok/kwok.yaml
		return nil, err
	}
	if err := c.createNodes(ctx); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, cmName, `the default ServiceAccount in namespace "default"`, func() bool {
		return httpOK(ctx, c.client, c.Server+"/api/v1/namespaces/default/serviceaccounts/default", "")
	}); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, schedName, "kube-scheduler /healthz", func() bool {
		return httpOK(ctx, insecureClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports["scheduler"]), "ok")
	}); err != nil {
		return nil, err
	}
	var notReady string
	if err := c.waitFor(ctx, kwokName, "kwok nodes Ready", func() bool {
		notReady, err = c.nodesNotReady(ctx)
		return err == nil && notReady == ""
	}); err != nil {
		return nil, fmt.Errorf("%w\n(last seen: %s)", err, notReady)
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	return c, nil
}

// start spawns the daemon name from BinDir and records it in the state.
func (c *Cluster) start(name string, args []string, env ...string) error {
	d := daemon{Name: name, Path: filepath.Join(c.BinDir, name), Args: args, Env: env}
	ch, err := spawn(c.Dir, &d)
	if ch != nil {
		c.children[ch.pid] = ch
		c.st.Daemons = append(c.st.Daemons, d)
	}
	return err
}

// waitFor polls ready every 100ms until it holds. It fails when a daemon
// of the cluster exited (with that daemon's log tail) or ctx ends (with
// the log tail of culprit, the daemon ready waits on).
func (c *Cluster) waitFor(ctx context.Context, culprit, what string, ready func() bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if ready() {
			return nil
		}
		for _, d := range c.st.Daemons {
			if !alive(d) {
				return fmt.Errorf("k8stest: %s exited while waiting for %s; %s.log ends:\n%s",
					d.Name, what, d.Name, logTail(c.Dir, d.Name, 30))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("k8stest: waiting for %s: %w; %s.log ends:\n%s",
				what, ctx.Err(), culprit, logTail(c.Dir, culprit, 30))
		case <-t.C:
		}
	}
}

// Attach returns the cluster Up started in dir, from its state file. It
// does not check that the cluster still runs (Down works on a dead one).
func Attach(dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("k8stest: no cluster in %s: %w", dir, err)
	}
	c := &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "admin.kubeconfig"), children: map[int]*child{}}
	if err := json.Unmarshal(b, &c.st); err != nil {
		return nil, fmt.Errorf("k8stest: %s: %w", filepath.Join(dir, stateFile), err)
	}
	c.BinDir, c.Server = c.st.BinDir, c.st.Server
	if c.client, err = adminClient(dir); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, stateFile))
}

// Down stops every daemon of the cluster by PID: kwok, the scheduler and
// the controller manager together, then the API server, then etcd; each
// gets SIGTERM, then SIGKILL after its grace period (2s for the API server,
// whose graceful shutdown would hold open connections for 60s; 10s for the
// others), and Down waits until each has exited. It removes the PID files
// and keeps the folder (logs, etcd data) for inspection. Down on a stopped
// cluster does nothing.
func (c *Cluster) Down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopAll()
}

// apiserverGrace is how long the API server gets between SIGTERM and
// SIGKILL. It stops listening at once but waits up to 60s for open
// connections (watches) to end; a test cluster has no reason to wait.
const apiserverGrace = 2 * time.Second

func (c *Cluster) stopAll() error {
	var (
		mu   sync.Mutex
		errs []error
	)
	// The private clusters tests started from this one (Private) go
	// first, so that a test binary killed by its timeout leaks nothing
	// past make test-k8s.
	errs = append(errs, downPrivate(c.Dir))
	stopOne := func(d daemon) {
		grace := 10 * time.Second
		if d.Name == apiserverName {
			grace = apiserverGrace
		}
		err := stop(d, c.children[d.PID], grace)
		if err == nil {
			os.Remove(filepath.Join(c.Dir, d.Name+".pid"))
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// The clients of the API server first, together; then the API
	// server; then etcd.
	var wg sync.WaitGroup
	for _, d := range c.st.Daemons {
		if d.Name != apiserverName && d.Name != etcdName {
			wg.Go(func() { stopOne(d) })
		}
	}
	wg.Wait()
	for _, name := range []string{apiserverName, etcdName} {
		if i := c.daemonIndex(name); i >= 0 {
			stopOne(c.st.Daemons[i])
		}
	}
	return errors.Join(errs...)
}

// RestartAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 2s,
// as Down does), starts it again with the same flags and port and waits
// until /readyz answers ok (~5s). The data survives (it lives in etcd);
// open watches and requests break, and clients reconnect. Every client of the cluster sees the outage: restart
// a private cluster (Private), not the one Get shares between packages.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.daemonIndex(apiserverName)
	if i < 0 {
		return fmt.Errorf("k8stest: no %s in %s", apiserverName, c.Dir)
	}
	d := c.st.Daemons[i]
	if err := stop(d, c.children[d.PID], apiserverGrace); err != nil {
		return err
	}
	delete(c.children, d.PID)
	ch, err := spawn(c.Dir, &d)
	if ch != nil {
		c.children[ch.pid] = ch
		c.st.Daemons[i] = d
	}
	if err != nil {
		return err
	}
	if err := c.save(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	return c.waitFor(ctx, apiserverName, "kube-apiserver /readyz after restart", func() bool {
		return httpOK(ctx, c.client, c.Server+"/readyz", "ok")
	})
}

func (c *Cluster) daemonIndex(name string) int {
	for i, d := range c.st.Daemons {
		if d.Name == name {
			return i
		}
	}
	return -1
}

// Ready returns nil when every daemon of the cluster runs and the API
// server's /readyz answers ok, waiting up to 30s for it (a restart in
// progress), or an error naming what is wrong.
func (c *Cluster) Ready(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.waitFor(ctx, apiserverName, "kube-apiserver /readyz", func() bool {
		return httpOK(ctx, c.client, c.Server+"/readyz", "ok")
	})
}

// RSS returns the resident memory of each running daemon, in bytes, by name.
func (c *Cluster) RSS() (map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for _, d := range c.st.Daemons {
		if !alive(d) {
			continue
		}
		n, err := rss(d.PID)
		if err != nil {
			return nil, err
		}
		out[d.Name] = n
	}
	return out, nil
}

// PIDs returns the PID of each daemon by name, as the state file records
// them (whether or not they still run).
func (c *Cluster) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, d := range c.st.Daemons {
		out[d.Name] = d.PID
	}
	return out
}

// Running reports whether the daemon name (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok) runs.
func (c *Cluster) Running(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.daemonIndex(name)
	return i >= 0 && alive(c.st.Daemons[i])
}

// freePorts asks the kernel for a free port of 127.0.0.1 per name. They
// are released before the daemons bind them, so another process may take
// one meanwhile: Up retries then.
func freePorts(names ...string) (map[string]int, error) {
	out := map[string]int{}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, n := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out[n] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// adminClient is an HTTP client with the admin certificate of dir's PKI.
func adminClient(dir string) (*http.Client, error) {
	p := filepath.Join(dir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(p, "admin.crt"), filepath.Join(p, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("k8stest: admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(p, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
		},
	}, nil
}

// insecureClient reaches the scheduler's health endpoint, served with a
// self-signed certificate the scheduler makes itself.
var insecureClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// httpOK reports whether GET url answers 200 with a body containing want.
func httpOK(ctx context.Context, client *http.Client, url, want string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, code, err := get(ctx, client, url)
	return err == nil && code == http.StatusOK && strings.Contains(string(b), want)
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// plainClient reaches etcd's plain-HTTP health endpoint, never via a proxy.
var plainClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
