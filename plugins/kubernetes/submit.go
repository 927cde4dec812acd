package kubernetes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"weir.dev/weir/plugins/kubernetes/launcher"
	"weir.dev/weir/runtime/backend"
)

// runParent is a run's parent object: a ConfigMap weir-run-RUN owning the
// run's Jobs, Secrets and PodGroups, so that deleting it cleans the run up.
type runParent struct {
	once  sync.Once
	owner *metav1.OwnerReference
	err   error
}

// RunParentName is the name of a run's parent ConfigMap.
func RunParentName(run string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(run) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 || s != strings.ToLower(run) {
		s = strings.Trim(JobName(run, "", 0), "-")
	}
	return "weir-run-" + s
}

var (
	grJobs       = schema.GroupResource{Group: "batch", Resource: "jobs"}
	grConfigMaps = schema.GroupResource{Resource: "configmaps"}
	grSecrets    = schema.GroupResource{Resource: "secrets"}
	grServices   = schema.GroupResource{Resource: "services"}
	grPodGroups  = schema.GroupResource{Group: PodGroupGVR.Group, Resource: PodGroupGVR.Resource}
)

// parent returns the owner reference of a run's parent ConfigMap, creating
// it at the run's first task.
func (b *Backend) parent(ctx context.Context, step, run string) (*metav1.OwnerReference, error) {
	b.mu.Lock()
	p := b.runs[run]
	if p == nil {
		p = &runParent{}
		b.runs[run] = p
	}
	cfg := b.cfg
	cs := b.client
	b.mu.Unlock()
	p.once.Do(func() {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RunParentName(run), Namespace: cfg.Namespace, Labels: map[string]string{
				LabelManagedBy: ManagedBy, LabelRun: LabelValue(run), LabelName: "weir-run"}},
			Data: map[string]string{"run": run},
		}
		if cfg.Project != "" {
			cm.Labels[LabelPartOf] = LabelValue(cfg.Project)
		}
		got, err := cs.CoreV1().ConfigMaps(cfg.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err = cs.CoreV1().ConfigMaps(cfg.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
		}
		if err != nil {
			p.err = b.apiErr(step, "create", grConfigMaps, err)
			return
		}
		p.owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: got.Name, UID: got.UID}
	})
	if p.err != nil {
		b.mu.Lock()
		if b.runs[run] == p {
			delete(b.runs, run) // the next task tries again
		}
		b.mu.Unlock()
	}
	return p.owner, p.err
}

// Submit creates the task's Job (with its Secret of variables, and for a
// distributed step its headless Service and PodGroup) and returns its ID,
// NAMESPACE/JOB. weir's executor retries a failed attempt itself, as a new
// Job, so a submitted Job has backoffLimit 0 (the plan and compiled
// manifests show the step's retries as the Job's backoffLimit).
//
// The container runs the step under the contract at /weir. Paths of the
// work folder become /weir paths; a step with inputs, outputs or a code
// folder needs the backend's bucket, through which the launcher moves them
// (a remote cluster cannot see this machine's folders). With a bucket the
// Job runs an image derived from the step's (image.go): its code folder
// and the launcher added, pushed to the backend's registry, named by
// digest. The task's
// variables, which may hold secrets, go into a Secret of the attempt,
// never into the Job.
func (b *Backend) Submit(ctx context.Context, t *backend.Task) (string, error) {
	w, err := b.watcherFor(ctx)
	if err != nil {
		return "", err
	}
	cfg := b.config()
	info := b.stepOf(t)
	in, secret, err := taskInput(cfg, t, info)
	if err != nil {
		return "", err
	}
	var imageNote string
	if cfg.Bucket != "" {
		// The step runs in its image derived with its code folder and the
		// launcher, pushed to the backend's registry (image.go).
		if in.image, imageNote, err = images.stepImage(ctx, cfg, t, info.element); err != nil {
			return "", err
		}
	}
	cs := w.client
	if t.RunID != "" {
		owner, err := b.parent(ctx, t.Step, t.RunID)
		if err != nil {
			return "", err
		}
		in.Owner = owner
	}
	name := JobName(t.Step, t.RunID, t.Attempt)
	if secret != nil {
		in.envSecret = name
		secret.Name, secret.Namespace = name, cfg.Namespace
		secret.Labels = map[string]string{LabelManagedBy: ManagedBy, LabelStep: LabelValue(t.Step), LabelRun: LabelValue(t.RunID)}
		if in.Owner != nil {
			secret.OwnerReferences = []metav1.OwnerReference{*in.Owner}
		}
	}
	wl, err := build(cfg, in)
	if err != nil {
		return "", err
	}
	if secret != nil && cfg.Bucket == "" {
		if _, ok := secret.Data[paramsKey]; ok {
			wl.Job.Spec.Template.Spec.Volumes = append(wl.Job.Spec.Template.Spec.Volumes, corev1.Volume{Name: "weir-params",
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name,
					Items: []corev1.KeyToPath{{Key: paramsKey, Path: "params.json"}}}}})
			c := &wl.Job.Spec.Template.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "weir-params", MountPath: Root + "/params.json", SubPath: "params.json", ReadOnly: true})
		}
	}
	job := wl.Job
	job.Spec.BackoffLimit = ptrTo(int32(0))

	var logf *os.File
	if t.LogPath != "" {
		if logf, err = os.OpenFile(t.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return "", fmt.Errorf("step %s: opening its log: %w", t.Step, err)
		}
		if imageNote != "" {
			fmt.Fprintln(logf, imageNote)
		}
	}
	id := cfg.Namespace + "/" + name
	tk := newTask(id, cfg.Namespace, name, t.Step, cs)
	tk.workers, tk.queue, tk.logf = in.workers, cfg.Queue, logf
	if t.Resources != nil {
		tk.memory = t.Resources.Memory
	}
	if cfg.Bucket != "" {
		// The launcher finds the inputs and params.json through the
		// manifest; Watch collects the outputs once the Job ends.
		prefix := taskPrefix(t.Step, t.RunID, t.Attempt)
		if _, err := launcher.Stage(ctx, cfg.Bucket, prefix, t); err != nil {
			if logf != nil {
				logf.Close()
			}
			return "", fmt.Errorf("step %s: staging its inputs in bucket %s: %w", t.Step, cfg.Bucket, err)
		}
		tk.collect = func(ctx context.Context) error { return launcher.Collect(ctx, cfg.Bucket, prefix, t) }
	}
	w.add(tk) // before the Job exists: none of its events is missed
	fail := func(err error) (string, error) {
		w.forget(name)
		tk.closeLog()
		return "", err
	}
	if secret != nil {
		if _, err := cs.CoreV1().Secrets(cfg.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fail(b.apiErr(t.Step, "create", grSecrets, err))
		}
	}
	if wl.PodGroup != nil {
		dyn := b.dynamic()
		if dyn == nil {
			return fail(fmt.Errorf("step %s: backend %s gang-schedules through Volcano, which needs a dynamic client", t.Step, cfg.Name))
		}
		gvr := podGroupResource()
		if _, err := dyn.Resource(gvr).Namespace(cfg.Namespace).Create(ctx, wl.PodGroup, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			if apierrors.IsNotFound(err) && !isNamespaceNotFound(err, cfg.Namespace) {
				return fail(fmt.Errorf("step %s: backend %s gang-schedules through Volcano (config.gang), but the cluster has no PodGroup resource (%s): install Volcano", t.Step, cfg.Name, gvr.GroupResource()))
			}
			return fail(b.apiErr(t.Step, "create", grPodGroups, err))
		}
	}
	created, err := cs.BatchV1().Jobs(cfg.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return fail(b.apiErr(t.Step, "create", grJobs, err))
	}
	if wl.Service != nil {
		// The Service goes with its Job.
		wl.Service.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}}
		if _, err := cs.CoreV1().Services(cfg.Namespace).Create(ctx, wl.Service, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			b.deleteJob(context.WithoutCancel(ctx), cfg.Namespace, name)
			return fail(b.apiErr(t.Step, "create", grServices, err))
		}
	}
	return id, nil
}

func (b *Backend) dynamic() dynamic.Interface {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dyn
}

// paramsKey is the key of the params file in an attempt's Secret.
const paramsKey = "weir-params.json"

// plainEnv are variables that stay in the Job: the contract's and the
// locale's. Every other variable of a task goes into its Secret.
var plainEnv = map[string]bool{"LANG": true, "LC_ALL": true, "TZ": true, "TMPDIR": true, "HOME": true}

// taskInput turns a task into a workload's input: the work folder's paths
// rewritten to /weir ones, the variables that may be secret set aside in a
// Secret (nil when there are none).
func taskInput(cfg *Config, t *backend.Task, info stepInfo) (*jobInput, *corev1.Secret, error) {
	if len(t.Argv) == 0 {
		return nil, nil, fmt.Errorf("step %s has no command to run", t.Step)
	}
	work := filepath.Clean(t.WorkDir)
	inContainer := func(p string) (string, bool) {
		if work == "." {
			return "", false
		}
		return backend.ContainerPath(work, p, Root)
	}
	if cfg.Bucket == "" {
		code := t.Dir != "" && filepath.Clean(t.Dir) != work
		if err := filesNeeds(cfg, t.Step, len(t.Inputs) > 0, len(t.Outputs) > 0, code); err != nil {
			return nil, nil, err
		}
	}
	in := &jobInput{address: t.Step, kind: info.kind, element: info.element, image: t.Image, argv: t.Argv, workingDir: Root,
		resources: t.Resources, timeout: info.timeout, workers: info.workers,
		BuildOptions: BuildOptions{Run: t.RunID, Attempt: t.Attempt}}
	if t.Dir != "" {
		if c, ok := inContainer(t.Dir); ok {
			in.workingDir = c
		}
	}
	env := map[string]string{}
	secret := map[string][]byte{}
	for k, v := range t.Env {
		switch {
		case k == "PATH" || k == "SYSTEMROOT":
			continue // the image's, not this machine's
		case k == "WEIR_PARAMS" && cfg.Bucket != "":
			continue // the launcher places params.json from the bucket
		case k == "WEIR_PARAMS":
			data, err := os.ReadFile(v)
			if err != nil {
				return nil, nil, fmt.Errorf("step %s: reading its parameters: %w", t.Step, err)
			}
			secret[paramsKey] = data
			env[k] = Root + "/params.json"
		case strings.HasPrefix(k, "WEIR_INPUT_"):
			name := strings.TrimPrefix(k, "WEIR_INPUT_")
			if c, ok := inContainer(v); ok {
				env[k] = c
			} else {
				env[k] = Root + "/in/" + strings.ToLower(name)
			}
		case strings.HasPrefix(k, "WEIR_") || plainEnv[k]:
			if c, ok := inContainer(v); ok {
				v = c
			}
			env[k] = v
		default:
			secret[k] = []byte(v)
		}
	}
	for _, k := range sortedNames(env) {
		in.env = append(in.env, corev1.EnvVar{Name: k, Value: env[k]})
	}
	if len(secret) == 0 {
		return in, nil, nil
	}
	return in, &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: secret}, nil
}

// Cancel deletes the task's Job with foreground propagation (its pods go
// first, each stopped with its grace period) and returns once the Job is
// gone.
func (b *Backend) Cancel(ctx context.Context, id string, grace time.Duration) error {
	w, err := b.watcherFor(ctx)
	if err != nil {
		return err
	}
	t, err := b.taskOf(ctx, w, id)
	if err != nil {
		return nil // already ended and collected
	}
	select {
	case <-t.done:
		return nil
	default:
	}
	t.mu.Lock()
	t.cancelled = true
	t.mu.Unlock()
	if err := b.deleteJob(ctx, t.ns, t.name); err != nil {
		if apierrors.IsNotFound(err) {
			t.finish(cancelledResult)
			return nil
		}
		return b.apiErr(t.step, "delete", grJobs, err)
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var cancelledResult = backend.Result{State: backend.StateCancelled, ExitCode: -1, Message: "cancelled"}

func (b *Backend) deleteJob(ctx context.Context, ns, name string) error {
	fg := metav1.DeletePropagationForeground
	b.mu.Lock()
	cs := b.client
	b.mu.Unlock()
	return cs.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg})
}

func podGroupResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: PodGroupGVR.Group, Version: PodGroupGVR.Version, Resource: PodGroupGVR.Resource}
}
