package k8stest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Pod logs: kwok runs no container, but its server answers the kubelet's
// /containerLogs endpoint from files named by its Logs (one pod) and
// ClusterLogs (pods selected by namespace and name) resources. Up installs
// their CRDs and starts kwok with --enable-crds=Logs,ClusterLogs, points
// every kwok node's kubelet endpoint (InternalIP and daemonEndpoints port)
// at kwok's TLS server on 127.0.0.1, and starts the API server with
// --kubelet-preferred-address-types=InternalIP, so GET pods/{name}/log goes
// API server -> kwok -> the file SetPodLogs wrote.

// crdManifest is a minimal CustomResourceDefinition of a kwok config kind
// (its fields are left unvalidated; kwok decodes them).
func crdManifest(kind, plural, scope string) map[string]any {
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + ".kwok.x-k8s.io"},
		"spec": map[string]any{
			"group": "kwok.x-k8s.io",
			"scope": scope,
			"names": map[string]any{
				"kind": kind, "listKind": kind + "List", "plural": plural, "singular": strings.ToLower(kind),
			},
			"versions": []map[string]any{{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
				"subresources": map[string]any{"status": map[string]any{}},
			}},
		},
	}
}

// installLogCRDs creates the Logs and ClusterLogs CRDs and waits until the
// API server serves them.
func (c *Cluster) installLogCRDs(ctx context.Context) error {
	for _, crd := range []map[string]any{
		crdManifest("Logs", "logs", "Namespaced"),
		crdManifest("ClusterLogs", "clusterlogs", "Cluster"),
	} {
		if err := c.do(ctx, http.MethodPost, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, 201, 409); err != nil {
			return fmt.Errorf("k8stest: kwok CRD: %w", err)
		}
	}
	return c.waitFor(ctx, apiserverName, "kwok's CRDs served", func() bool {
		return httpOK(ctx, c.client, c.Server+"/apis/kwok.x-k8s.io/v1alpha1/clusterlogs", "") &&
			httpOK(ctx, c.client, c.Server+"/apis/kwok.x-k8s.io/v1alpha1/logs", "")
	})
}

// SetPodLogs makes `GET pods/{pod}/log` (kubectl logs, client-go's
// GetLogs) of pod in namespace answer text, for every container; with pod
// "" it does so for every pod of the namespace (Job pods have generated
// names: give the test a namespace of its own). text is plain lines; they
// are stored in the CRI log format kwok reads, stamped with the current
// time, in Dir/podlogs. Calling it again replaces the text. It returns once
// kwok serves the text.
//
// A follow request (follow=true) gets the text, then every line
// AppendPodLogs adds, and never ends by itself: kwok cannot tell that the
// container stopped, so the client must close the stream (a real kubelet
// ends it when the container exits).
func (c *Cluster) SetPodLogs(ctx context.Context, namespace, pod, text string) error {
	file := c.podLogFile(namespace, pod)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(file, CRILog(time.Now(), text), 0o600); err != nil {
		return err
	}
	spec := map[string]any{"logs": []map[string]any{{"logsFile": file, "follow": false}}}
	var path string
	var obj map[string]any
	if pod != "" {
		path = fmt.Sprintf("/apis/kwok.x-k8s.io/v1alpha1/namespaces/%s/logs/%s", namespace, pod)
		obj = map[string]any{
			"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
			"metadata": map[string]any{"name": pod, "namespace": namespace},
			"spec":     spec,
		}
	} else {
		cr := "weir-ns-" + namespace
		spec["selector"] = map[string]any{"matchNamespaces": []string{namespace}}
		path = "/apis/kwok.x-k8s.io/v1alpha1/clusterlogs/" + cr
		obj = map[string]any{
			"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
			"metadata": map[string]any{"name": cr},
			"spec":     spec,
		}
	}
	if err := c.apply(ctx, path, obj); err != nil {
		return fmt.Errorf("k8stest: SetPodLogs: %w", err)
	}
	// Wait until kwok's informer has the resource: ask kwok's kubelet
	// endpoint directly for a container of the pod (any name matches).
	name := pod
	if name == "" {
		name = "*"
	}
	probe := pod
	if probe == "" {
		probe = "k8stest-probe"
	}
	want := firstLine(text)
	u := fmt.Sprintf("https://127.0.0.1:%d/containerLogs/%s/%s/main", c.st.Ports["kwok"], namespace, probe)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.waitFor(ctx, kwokName, "kwok serving the logs of "+namespace+"/"+name, func() bool {
		return httpOK(ctx, insecureClient, u, want)
	})
}

// AppendPodLogs adds text to what SetPodLogs set for the same namespace and
// pod ("" for the namespace's), as a running container would: followers
// receive it.
func (c *Cluster) AppendPodLogs(namespace, pod, text string) error {
	f, err := os.OpenFile(c.podLogFile(namespace, pod), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("k8stest: AppendPodLogs without SetPodLogs: %w", err)
	}
	_, err = f.Write(CRILog(time.Now(), text))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *Cluster) podLogFile(namespace, pod string) string {
	if pod == "" {
		pod = "_namespace" // not a valid pod name: no clash
	}
	return filepath.Join(c.Dir, "podlogs", namespace, pod+".log")
}

// apply creates or replaces obj at path by server-side apply.
func (c *Cluster) apply(ctx context.Context, path string, obj map[string]any) error {
	return c.doWith(ctx, http.MethodPatch, path+"?fieldManager=k8stest&force=true",
		"application/apply-patch+yaml", obj, 200, 201)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// CRILog formats text as a container log file in the CRI format kubelets
// (and kwok) read: one "TIME stdout F LINE" per line of text.
func CRILog(t time.Time, text string) []byte {
	var sb strings.Builder
	ts := t.UTC().Format(time.RFC3339Nano)
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		fmt.Fprintf(&sb, "%s stdout F %s", ts, line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteByte('\n')
		}
	}
	return []byte(sb.String())
}
