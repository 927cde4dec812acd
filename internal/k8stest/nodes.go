package k8stest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The labels, resources and taint of the kwok nodes Up creates.
const (
	LabelType     = "type" // on every kwok node: kwok manages the nodes with type=kwok
	LabelTypeKwok = "kwok"
	LabelPool     = "weir.dev/pool" // PoolCPU or PoolGPU
	PoolCPU       = "cpu"
	PoolGPU       = "gpu"

	GPUResource     = "nvidia.com/gpu"         // the extended resource GPU nodes advertise
	GPUPerNode      = 4                        // nvidia.com/gpu in capacity and allocatable of each GPU node
	GPUProductLabel = "nvidia.com/gpu.product" // on GPU nodes, value GPUProduct
	GPUProduct      = "a100"
	GPUTaintKey     = "nvidia.com/gpu" // GPU nodes' taint nvidia.com/gpu=present:NoSchedule
	GPUTaintValue   = "present"
	GPUTaintEffect  = "NoSchedule"
)

// The node names of each pool.
var (
	CPUNodes = []string{"kwok-cpu-0", "kwok-cpu-1"}
	GPUNodes = []string{"kwok-gpu-0", "kwok-gpu-1"}
)

// Node describes one kwok node of the cluster.
type Node struct {
	Name   string
	Pool   string // PoolCPU or PoolGPU
	CPU    string // capacity and allocatable, as a Kubernetes quantity
	Memory string
	Pods   int
	GPUs   int // nvidia.com/gpu; 0 on CPU nodes
}

// Nodes are the kwok nodes Up creates: a CPU pool of 2 (16 CPUs, 64Gi) and
// a GPU pool of 2 (32 CPUs, 256Gi, 4 GPUs, tainted).
var Nodes = []Node{
	{Name: CPUNodes[0], Pool: PoolCPU, CPU: "16", Memory: "64Gi", Pods: 110},
	{Name: CPUNodes[1], Pool: PoolCPU, CPU: "16", Memory: "64Gi", Pods: 110},
	{Name: GPUNodes[0], Pool: PoolGPU, CPU: "32", Memory: "256Gi", Pods: 110, GPUs: GPUPerNode},
	{Name: GPUNodes[1], Pool: PoolGPU, CPU: "32", Memory: "256Gi", Pods: 110, GPUs: GPUPerNode},
}

// manifest is n as a v1 Node object. The API server keeps a node's status
// on create (kubelets register that way), and kwok's node-initialize stage
// keeps the capacity it finds.
func (n Node) manifest() map[string]any {
	labels := map[string]string{
		LabelType:                LabelTypeKwok,
		LabelPool:                n.Pool,
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
	res := map[string]string{"cpu": n.CPU, "memory": n.Memory, "pods": fmt.Sprint(n.Pods)}
	spec := map[string]any{}
	if n.GPUs > 0 {
		labels[GPUProductLabel] = GPUProduct
		res[GPUResource] = fmt.Sprint(n.GPUs)
		spec["taints"] = []map[string]string{{"key": GPUTaintKey, "value": GPUTaintValue, "effect": GPUTaintEffect}}
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata": map[string]any{
			"name":        n.Name,
			"labels":      labels,
			"annotations": map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		},
		"spec":   spec,
		"status": map[string]any{"capacity": res, "allocatable": res},
	}
}

// createNodes creates Nodes through the API server (idempotent: a node
// that exists is left as it is).
func (c *Cluster) createNodes(ctx context.Context) error {
	for _, n := range Nodes {
		body, err := json.Marshal(n.manifest())
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Server+"/api/v1/nodes", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.client.Do(req)
		if err != nil {
			return fmt.Errorf("k8stest: create node %s: %w", n.Name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("k8stest: create node %s: %s: %s", n.Name, resp.Status, msg)
		}
	}
	return nil
}

// nodesNotReady lists the kwok nodes and describes those not yet usable:
// missing, not Ready, or still tainted not-ready/unreachable by the node
// lifecycle controller. It returns "" when every node is usable.
func (c *Cluster) nodesNotReady(ctx context.Context) (string, error) {
	b, code, err := get(ctx, c.client, c.Server+"/api/v1/nodes?labelSelector="+url.QueryEscape(LabelType+"="+LabelTypeKwok))
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("k8stest: list nodes: HTTP %d: %s", code, b)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Taints []struct {
					Key string `json:"key"`
				} `json:"taints"`
			} `json:"spec"`
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return "", err
	}
	var bad []string
	seen := map[string]bool{}
	for _, it := range list.Items {
		seen[it.Metadata.Name] = true
		ready := false
		for _, cond := range it.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" {
				ready = true
			}
		}
		if !ready {
			bad = append(bad, it.Metadata.Name+" not Ready")
		}
		for _, t := range it.Spec.Taints {
			if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
				bad = append(bad, it.Metadata.Name+" tainted "+t.Key)
			}
		}
	}
	for _, n := range Nodes {
		if !seen[n.Name] {
			bad = append(bad, n.Name+" missing")
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, ", "), nil
}
