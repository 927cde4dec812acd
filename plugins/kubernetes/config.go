package kubernetes

import (
	"fmt"
	"strings"

	"weir.dev/weir/schema"
)

// Defaults of a backend's settings.
const (
	// defaultGPUResource is the extended resource GPUs are asked as.
	defaultGPUResource = "nvidia.com/gpu"
	// DefaultGPUNodeLabel is the node label naming a node's GPU model
	// (NVIDIA's GPU feature discovery sets it).
	DefaultGPUNodeLabel = "nvidia.com/gpu.product"
	// DefaultMasterPort is the rendezvous port of distributed training.
	DefaultMasterPort = 29500
	// DefaultTTL is how long a finished Job stays for inspection.
	DefaultTTL = 3600
	// DefaultQPS and DefaultBurst bound the client's request rate (client-go's
	// own defaults, 5 and 10, would make 500 steps take minutes).
	DefaultQPS   = 50
	DefaultBurst = 100
)

// Gang scheduling of distributed steps.
const (
	GangNone    = ""
	GangKueue   = "kueue"
	GangVolcano = "volcano"
)

// Config is a kubernetes backend's settings: the spec's backends entry,
// its config map read and defaults applied. The zero value is not valid:
// use ParseConfig.
type Config struct {
	// Name is the backend's name in the spec, used in messages.
	Name string
	// Kubeconfig and Context select the cluster; "" means KUBECONFIG,
	// ~/.kube/config or the in-cluster configuration, and its current
	// context.
	Kubeconfig string
	Context    string
	// Namespace steps run in (default "default"); ServiceAccount their
	// pods run as ("" the namespace's default).
	Namespace      string
	ServiceAccount string
	// Queue is a Kueue LocalQueue: Jobs carry its label and are created
	// suspended, for Kueue to admit.
	Queue string
	// GPUResource is the extended resource name of GPUs (backend gpuType),
	// GPUNodeLabel the node label naming the GPU model (config.gpuNodeLabel)
	// and GPUTaint the taint key GPU nodes carry (config.gpuTaint).
	GPUResource  string
	GPUNodeLabel string
	GPUTaint     string
	// Gang is how a distributed step's workers are scheduled all at once
	// (config.gang: "kueue", "volcano"; default kueue when a queue is
	// named, else none).
	Gang string
	// MasterPort is the rendezvous port of distributed training
	// (config.masterPort).
	MasterPort int
	// TTL is ttlSecondsAfterFinished (config.ttlSecondsAfterFinished).
	TTL int
	// Project names the project in the part-of label (config.project;
	// default the project folder's name, set by the CLI).
	Project string
	// Bucket, when set (config.bucket, a gocloud.dev/blob URL), is where a
	// step's inputs and outputs travel through: the launcher
	// (plugins/kubernetes/launcher, at launcher.Path in the image Submit
	// derives for the step: see Registry and Launcher) moves them between
	// it and /weir in the container.
	Bucket string
	// Registry (the backend's registry field) is where Submit pushes the
	// images it derives for a bucket's steps: the step's image, its code
	// folder and the launcher (image.go). A bucket needs one, unless
	// Launcher is LauncherInImage.
	Registry string
	// Launcher is the path of the weir-launcher binary added to the steps'
	// images (config.launcher; a static Linux executable for the cluster's
	// architecture). "" looks for weir-launcher next to the weir
	// executable, then on PATH; LauncherInImage says the images carry it
	// already (nothing derived, no registry needed).
	Launcher string
	// SecretName is the Secret a compiled manifest takes the spec's
	// secret environment variables from (config.secretName, default
	// "weir-secrets"); a submitted step gets a Secret of its own.
	SecretName string
	// QPS and Burst bound the client's request rate (config.qps,
	// config.burst).
	QPS   float32
	Burst int
}

// ParseConfig reads a backends entry of kind kubernetes. name is the
// entry's name, for messages.
func ParseConfig(name string, b *schema.Backend) (*Config, error) {
	c := &Config{Name: name, Namespace: "default", GPUResource: defaultGPUResource, GPUNodeLabel: DefaultGPUNodeLabel,
		MasterPort: DefaultMasterPort, TTL: DefaultTTL, SecretName: "weir-secrets", QPS: DefaultQPS, Burst: DefaultBurst}
	if b == nil {
		c.GPUTaint = c.GPUResource
		return c, nil
	}
	c.Kubeconfig, c.Context, c.ServiceAccount, c.Queue = b.Kubeconfig, b.Context, b.ServiceAccount, b.Queue
	c.Registry = b.Registry
	if b.Namespace != "" {
		c.Namespace = b.Namespace
	}
	if b.GPUType != "" {
		c.GPUResource = b.GPUType
	}
	var errs []string
	str := func(key string, dst *string) {
		v, ok := b.Config[key]
		if !ok {
			return
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Sprintf("config.%s must be a string, not %v", key, v))
			return
		}
		*dst = s
	}
	num := func(key string, dst *int, min int) {
		v, ok := b.Config[key]
		if !ok {
			return
		}
		var n int
		switch x := v.(type) {
		case int:
			n = x
		case int64:
			n = int(x)
		case float64:
			n = int(x)
			if float64(n) != x {
				errs = append(errs, fmt.Sprintf("config.%s must be a whole number, not %v", key, v))
				return
			}
		default:
			errs = append(errs, fmt.Sprintf("config.%s must be a number, not %v", key, v))
			return
		}
		if n < min {
			errs = append(errs, fmt.Sprintf("config.%s must be at least %d, not %d", key, min, n))
			return
		}
		*dst = n
	}
	str("gpuNodeLabel", &c.GPUNodeLabel)
	str("gpuTaint", &c.GPUTaint)
	str("gang", &c.Gang)
	str("project", &c.Project)
	str("bucket", &c.Bucket)
	str("launcher", &c.Launcher)
	str("secretName", &c.SecretName)
	num("masterPort", &c.MasterPort, 1)
	num("ttlSecondsAfterFinished", &c.TTL, 0)
	qps := int(c.QPS)
	num("qps", &qps, 1)
	c.QPS = float32(qps)
	num("burst", &c.Burst, 1)
	if c.GPUTaint == "" {
		c.GPUTaint = c.GPUResource
	}
	if _, set := b.Config["gang"]; !set && c.Queue != "" {
		c.Gang = GangKueue
	}
	switch c.Gang {
	case GangNone, GangKueue, GangVolcano:
	case "none":
		c.Gang = GangNone
	default:
		errs = append(errs, fmt.Sprintf("config.gang is %q: it must be \"kueue\", \"volcano\" or \"none\"", c.Gang))
	}
	if c.Gang == GangKueue && c.Queue == "" {
		errs = append(errs, "config.gang is \"kueue\", which needs a queue (the Kueue LocalQueue steps go to)")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("backend %s: %s", name, strings.Join(errs, "; "))
	}
	return c, nil
}
