package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/backend"
	"weir.dev/weir/schema"
)

// Root is where the step contract lives in a step's container: /weir/in/NAME,
// /weir/out/NAME, /weir/tmp, /weir/params.json, /weir/metrics.jsonl, and
// /weir/code for a code folder (as on the docker backend).
const Root = "/weir"

// Labels and annotations of the objects Weir makes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the managed-by label's value; the backend's informers
	// watch only objects carrying it.
	ManagedBy = "weir"
	// LabelRun is the run ID; LabelStep the step's address as a label
	// value (hashed when the address is not one); LabelAttempt the attempt.
	LabelRun     = "weir.dev/run"
	LabelStep    = "weir.dev/step"
	LabelAttempt = "weir.dev/attempt"
	// AnnotationStep is the step's full address.
	AnnotationStep = "weir.dev/address"
	// LabelQueue is Kueue's queue label.
	LabelQueue = "kueue.x-k8s.io/queue-name"
	// AnnotationPodGroup names a pod's Volcano PodGroup.
	AnnotationPodGroup = "scheduling.k8s.io/group-name"
)

// Rendezvous variables of distributed training, as torchrun reads them.
const (
	EnvMasterAddr = "MASTER_ADDR"
	EnvMasterPort = "MASTER_PORT"
	EnvWorldSize  = "WORLD_SIZE"
	EnvRank       = "RANK"
)

// PodGroupGVR names Volcano's PodGroup resource.
var PodGroupGVR = struct{ Group, Version, Resource, Kind string }{"scheduling.volcano.sh", "v1beta1", "podgroups", "PodGroup"}

// Workload is what one step runs as on Kubernetes: a Job, with a headless
// Service for a distributed step's rendezvous and a Volcano PodGroup when
// the backend gang-schedules through Volcano. Nil fields are objects the
// step does not need.
type Workload struct {
	Job      *batchv1.Job               `json:"job"`
	Service  *corev1.Service            `json:"service,omitempty"`
	PodGroup *unstructured.Unstructured `json:"podGroup,omitempty"`
}

// BuildOptions say which attempt of which run a workload is for. The zero
// value builds a step's manifests outside any run (weir compile, the plan).
type BuildOptions struct {
	// Run and Attempt, when set, make the objects' names unique to the
	// attempt and label them.
	Run     string
	Attempt int
	// Owner, when set, is the owner reference of the Job (and PodGroup):
	// deleting the owner (the run's ConfigMap) deletes them.
	Owner *metav1.OwnerReference
}

// StepWorkload builds the objects of a step from the backend's settings:
// the Job (backoffLimit from the step's retries, activeDeadlineSeconds from
// its timeout, ttlSecondsAfterFinished, the recommended labels, GPU limits,
// node selector and toleration, the Kueue queue), and for distributed
// training an Indexed Job with its headless Service. The container runs the
// step under the contract at /weir: the step's declared variables are set,
// its secret ones read from the Secret cfg.SecretName (key: the variable's
// name). StepWorkload is pure: the same step and settings give the same
// objects, and it reads nothing else. An error names what in the step
// cannot run on Kubernetes.
func StepWorkload(cfg *Config, s *schema.Step, o BuildOptions) (*Workload, error) {
	if s.Run == nil || len(s.Run.Command) == 0 {
		return nil, fmt.Errorf("step %s has no command to run", s.Address)
	}
	r := s.Run
	in := &jobInput{
		address: s.Address, element: s.Element, kind: s.Kind, image: r.Image, argv: r.Command,
		workingDir: Root, resources: r.Resources, retries: r.Retries, timeout: r.Timeout, workers: r.Workers,
		BuildOptions: o,
	}
	if r.Code != "" {
		in.workingDir = Root + "/code"
	}
	env := map[string]corev1.EnvVar{}
	for k, v := range r.Env {
		if v.Secret != "" {
			env[k] = corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: cfg.SecretName}, Key: k}}}
		} else {
			env[k] = corev1.EnvVar{Name: k, Value: v.Value}
		}
	}
	set := func(k, v string) { env[k] = corev1.EnvVar{Name: k, Value: v} }
	set("WEIR_STEP", s.Address)
	if o.Run != "" {
		set("WEIR_RUN_ID", o.Run)
	}
	set("WEIR_METRICS", Root+"/metrics.jsonl")
	if len(s.Params) > 0 {
		set("WEIR_PARAMS", Root+"/params.json")
	}
	for _, i := range s.Inputs {
		set("WEIR_INPUT_"+backend.EnvName(i.Name), Root+"/in/"+i.Name)
	}
	for _, name := range s.Outputs {
		set("WEIR_OUTPUT_"+backend.EnvName(name), Root+"/out/"+name)
	}
	set("TMPDIR", Root+"/tmp")
	for _, k := range sortedNames(env) {
		in.env = append(in.env, env[k])
	}
	return build(cfg, in)
}

// jobInput is what build makes a workload of, from a step (StepWorkload)
// or from a task (Submit).
type jobInput struct {
	address, element, kind string
	image                  string
	argv                   []string
	workingDir             string
	// env is the container's environment, sorted; envSecret names a
	// Secret holding the rest (a task's variables).
	env       []corev1.EnvVar
	envSecret string
	resources *schema.Resources
	retries   int
	timeout   string
	workers   int
	BuildOptions
}

func build(cfg *Config, in *jobInput) (*Workload, error) {
	if in.image == "" {
		return nil, fmt.Errorf("step %s names no image (run.image): the kubernetes backend runs steps in containers", in.address)
	}
	if len(in.argv) == 0 {
		return nil, fmt.Errorf("step %s has no command to run", in.address)
	}
	name := JobName(in.address, in.Run, in.Attempt)
	labels := map[string]string{
		LabelName:      LabelValue(elementName(in.address, in.element)),
		LabelInstance:  name,
		LabelManagedBy: ManagedBy,
		LabelStep:      LabelValue(in.address),
	}
	if in.kind != "" {
		labels[LabelComponent] = LabelValue(in.kind)
	}
	if cfg.Project != "" {
		labels[LabelPartOf] = LabelValue(cfg.Project)
	}
	if in.Run != "" {
		labels[LabelRun] = LabelValue(in.Run)
	}
	if in.Attempt > 0 {
		labels[LabelAttempt] = strconv.Itoa(in.Attempt)
	}
	annotations := map[string]string{AnnotationStep: in.address}

	ctr := corev1.Container{
		Name:         "step",
		Image:        in.image,
		Command:      in.argv,
		WorkingDir:   in.workingDir,
		Env:          append([]corev1.EnvVar(nil), in.env...),
		VolumeMounts: []corev1.VolumeMount{{Name: "weir", MountPath: Root}},
	}
	if in.envSecret != "" {
		ctr.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: in.envSecret}}}}
	}
	pod := corev1.PodSpec{
		RestartPolicy:      corev1.RestartPolicyNever,
		ServiceAccountName: cfg.ServiceAccount,
		Volumes:            []corev1.Volume{{Name: "weir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	if cfg.Bucket != "" {
		// The launcher, in the image at launcher.Path (under /weir, so no
		// volume hides /weir), fetches the inputs from the bucket, runs the
		// command, and puts the outputs and metrics back.
		pod.Volumes = nil
		ctr.VolumeMounts = nil
		ctr.Command = launcherCommand(cfg, in)
	}

	if r := in.resources; r != nil {
		req, lim := corev1.ResourceList{}, corev1.ResourceList{}
		if r.CPU > 0 {
			req[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Ceil(r.CPU*1000)), resource.DecimalSI)
		}
		if r.Memory != "" {
			q, err := resource.ParseQuantity(r.Memory)
			if err != nil || q.Sign() <= 0 {
				return nil, fmt.Errorf("step %s: resources.memory %q is not a memory size (e.g. 512Mi, 4Gi)", in.address, r.Memory)
			}
			req[corev1.ResourceMemory], lim[corev1.ResourceMemory] = q, q
		}
		if r.GPU > 0 {
			// Extended resources go in limits only (requests default to them).
			lim[corev1.ResourceName(cfg.GPUResource)] = *resource.NewQuantity(int64(r.GPU), resource.DecimalSI)
			pod.Tolerations = []corev1.Toleration{{Key: cfg.GPUTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			if r.GPUType != "" {
				pod.NodeSelector = map[string]string{cfg.GPUNodeLabel: r.GPUType}
			}
		} else if r.GPUType != "" {
			return nil, fmt.Errorf("step %s: resources.gpuType is %s but resources.gpu asks for no GPU", in.address, r.GPUType)
		}
		if len(req) > 0 {
			ctr.Resources.Requests = req
		}
		if len(lim) > 0 {
			ctr.Resources.Limits = lim
		}
	}

	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: cloneLabels(labels), Annotations: cloneLabels(annotations)},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptrTo(int32(in.retries)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: cloneLabels(labels), Annotations: cloneLabels(annotations)},
			},
		},
	}
	if cfg.TTL >= 0 {
		job.Spec.TTLSecondsAfterFinished = ptrTo(int32(cfg.TTL))
	}
	if in.timeout != "" {
		d, err := time.ParseDuration(in.timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("step %s: timeout %q is not a duration", in.address, in.timeout)
		}
		job.Spec.ActiveDeadlineSeconds = ptrTo(int64(math.Ceil(d.Seconds())))
	}
	if in.Owner != nil {
		job.OwnerReferences = []metav1.OwnerReference{*in.Owner}
	}
	queued := cfg.Queue != "" && cfg.Gang != GangVolcano
	if queued {
		job.Labels[LabelQueue] = cfg.Queue
		job.Spec.Suspend = ptrTo(true) // Kueue admits it by unsuspending
	}

	w := &Workload{Job: job}
	if n := in.workers; n > 1 {
		svc := name
		job.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
		job.Spec.Completions, job.Spec.Parallelism = ptrTo(int32(n)), ptrTo(int32(n))
		pod.Subdomain = svc
		port := strconv.Itoa(cfg.MasterPort)
		ctr.Env = append(ctr.Env,
			// Pod 0's stable name: JOB-0.SERVICE in the namespace.
			corev1.EnvVar{Name: EnvMasterAddr, Value: fmt.Sprintf("%s-0.%s.%s.svc", name, svc, cfg.Namespace)},
			corev1.EnvVar{Name: EnvMasterPort, Value: port},
			corev1.EnvVar{Name: EnvWorldSize, Value: strconv.Itoa(n)},
			corev1.EnvVar{Name: EnvRank, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
				FieldPath: "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"}}},
		)
		ctr.Ports = []corev1.ContainerPort{{Name: "rendezvous", ContainerPort: int32(cfg.MasterPort)}}
		w.Service = &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: cfg.Namespace, Labels: cloneLabels(labels), Annotations: cloneLabels(annotations)},
			Spec: corev1.ServiceSpec{
				ClusterIP:                corev1.ClusterIPNone,
				Selector:                 map[string]string{batchv1.JobNameLabel: name},
				PublishNotReadyAddresses: true, // workers rendezvous before they are ready
				Ports:                    []corev1.ServicePort{{Name: "rendezvous", Port: int32(cfg.MasterPort)}},
			},
		}
		if in.Owner != nil {
			w.Service.OwnerReferences = []metav1.OwnerReference{*in.Owner}
		}
		if cfg.Gang == GangVolcano {
			pod.SchedulerName = "volcano"
			job.Spec.Template.Annotations[AnnotationPodGroup] = name
			spec := map[string]any{"minMember": int64(n)}
			if cfg.Queue != "" {
				spec["queue"] = cfg.Queue
			}
			if r := in.resources; r != nil && r.GPU > 0 {
				spec["minResources"] = map[string]any{cfg.GPUResource: strconv.Itoa(n * r.GPU)}
			}
			meta := map[string]any{"name": name, "namespace": cfg.Namespace, "labels": labelsAny(labels)}
			if in.Owner != nil {
				meta["ownerReferences"] = []any{map[string]any{"apiVersion": in.Owner.APIVersion, "kind": in.Owner.Kind,
					"name": in.Owner.Name, "uid": string(in.Owner.UID)}}
			}
			w.PodGroup = &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": PodGroupGVR.Group + "/" + PodGroupGVR.Version,
				"kind":       PodGroupGVR.Kind,
				"metadata":   meta,
				"spec":       spec,
			}}
		}
	}
	pod.Containers = []corev1.Container{ctr}
	job.Spec.Template.Spec = pod
	return w, nil
}

// launcherCommand is the step container's command when artifacts travel
// through a bucket: the launcher, told where the attempt's manifest is,
// then the step's own command after "--".
func launcherCommand(cfg *Config, in *jobInput) []string {
	cmd := []string{launcher.Path, "-bucket", cfg.Bucket, "-prefix", taskPrefix(in.address, in.Run, in.Attempt), "-root", Root, "--"}
	return append(cmd, in.argv...)
}

// taskPrefix is where an attempt's manifest and result are in the bucket.
func taskPrefix(address, run string, attempt int) string {
	if run == "" {
		return "steps/" + LabelValue(address)
	}
	return "runs/" + LabelValue(run) + "/" + LabelValue(address) + "/" + strconv.Itoa(attempt)
}

// JobName is the name of a step's Job (and of its Service): the address
// made a DNS label, shortened, with a hash of the address, run and attempt,
// so that names are unique, stable and short enough for an indexed Job's
// pod host names (JOB-INDEX, at most 63 characters).
func JobName(address, run string, attempt int) string {
	var b strings.Builder
	dash := true
	for _, c := range strings.ToLower(address) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		switch {
		case ok:
			b.WriteRune(c)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 30 {
			break
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" || slug[0] < 'a' || slug[0] > 'z' {
		slug = "step-" + slug
		slug = strings.TrimRight(slug, "-")
	}
	key := address
	if run != "" {
		key += "\x00" + run + "\x00" + strconv.Itoa(attempt)
	}
	sum := sha256.Sum256([]byte(key))
	return slug + "-" + hex.EncodeToString(sum[:])[:10]
}

var labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// LabelValue makes s a valid label value: s itself when it is one, else
// its valid characters (others become _), cut to leave room for a hash of
// s, so that distinct strings stay distinct.
func LabelValue(s string) string {
	if len(s) <= 63 && labelValueRE.MatchString(s) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	v := b.String()
	if len(v) > 52 {
		v = v[:52]
	}
	v = strings.TrimRight(strings.TrimLeft(v, "-_."), "-_.")
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:10]
	if v == "" {
		return h
	}
	return v + "-" + h
}

// elementName is the element a step belongs to, for the name label.
func elementName(address, element string) string {
	if element != "" {
		return element
	}
	return address
}

func ptrTo[T any](v T) *T { return &v }

func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func labelsAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
