// Package kubernetes is the Kubernetes backend (client-go): each attempt of
// a step runs as a batch/v1 Job in the backend's namespace, under the step
// contract of DESIGN section 5 with its paths under /weir/.
//
// StepWorkload is the pure heart of it: from a step and the backend's
// Config it builds the Job (backoffLimit from retries, activeDeadlineSeconds
// from the timeout, ttlSecondsAfterFinished, the app.kubernetes.io/* labels
// and weir.dev/run and weir.dev/step), GPU limits of the backend's GPU
// resource with a node selector for the GPU model and a toleration of the
// GPU taint, the Kueue queue label with the Job created suspended, and for
// distributed training an Indexed Job (completions = parallelism = workers)
// with a headless Service and MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK
// (from the completion index), gang-scheduled by Kueue or by a Volcano
// PodGroup. Lower shows it in the plan; weir compile writes it out.
//
// Submit creates the attempt's Job (owned by the run's parent ConfigMap
// weir-run-RUN: deleting it deletes the run's Jobs), with the task's
// variables in a Secret of its own. Watch follows Jobs and pods through one
// shared informer factory per backend (namespace and managed-by label
// filtered: a fixed number of LIST and WATCH requests whatever the number
// of steps, and informers relist when the API server comes back): a Job's
// state from its conditions, an unschedulable pod reported while it waits
// with the scheduler's message, image pull failures, OOM kills and
// evictions named, pod logs streamed, a failure's pod reason and log tail.
// Cancel deletes the Job with foreground propagation and returns once it is
// gone. Check, called by the planner, looks at the cluster before apply:
// namespace, queue, resources no node can ever give, RBAC.
//
// weir's executor retries attempts itself, so a Job it submits has
// backoffLimit 0; the step's retries become the backoffLimit of the Jobs
// the plan shows and weir compile writes. A task carries its step's kind,
// element, workers and timeout; for tasks that do not (an older weir), the
// backend remembers them from Lower, Check or Prepare.
//
// A cluster cannot read this machine's folders: a step with inputs or
// outputs needs config.bucket (a gocloud.dev/blob URL). Submit then stages
// the inputs and params.json there (launcher.Stage), the container's
// command is the launcher (plugins/kubernetes/launcher, which the step's
// image must carry at launcher.Path: launcher.AddToImage), and Watch
// collects the outputs and metrics once the Job ends (launcher.Collect).
//
// The launcher reaches the container in the image (image.go): with a
// bucket, Submit derives each step's image at apply time from its
// run.image (pinned to weir.lock's digest, pulled with go-containerregistry's
// remote and the Docker keychain), the code folder's layer at /weir/code
// when run.code is set (plugins/docker's Derive) and the launcher's layer
// (launcher.AddToImage, entrypoint launcher.Path), pushes it to the
// backend's registry as REGISTRY/PROJECT/ELEMENT (the steps of an
// element, a sweep's trials, share one) and runs it by digest. The
// layers are reproducible, so the same base, code and launcher give the
// same digest: a manifest the registry has already (a HEAD of its tag) is
// not pushed again, nor are the blobs its repository has. The
// launcher binary is config.launcher, else weir-launcher next to the weir
// executable (make build writes bin/weir-launcher), else on PATH; it must
// be a static Linux executable for the cluster's architecture. A bucket
// without a registry is refused at Submit, naming the backend, unless
// config.launcher is "in-image": the step images then carry the launcher
// already and run as named (no code folder can travel then).
//
// Deploy, SetTraffic and Undeploy delegate to Serving (serving_deploy.go),
// made with the backend's clients and settings at first use.
//
// The package implements runtime/backend's interface. It never imports the
// compiler, the executor, CUE or OPA; it never prints.
package kubernetes
