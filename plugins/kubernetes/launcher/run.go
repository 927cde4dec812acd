package launcher

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"weir.dev/weir/runtime/artifact"
	"weir.dev/weir/runtime/backend"
)

// Variables the launcher reads its bucket and prefix from when its flags do
// not give them. They are not passed on to the command.
const (
	EnvBucket = "WEIR_LAUNCHER_BUCKET"
	EnvPrefix = "WEIR_LAUNCHER_PREFIX"
)

// storeDir is the launcher's scratch store under Root, removed before it
// exits.
const storeDir = ".launcher"

// Run is the launcher's main, run inside the step's container:
//
//	weir-launcher [-bucket URL] [-prefix KEY] [-root /weir] -- COMMAND [ARG...]
//
// It reads PREFIX/manifest.json from the bucket, places the inputs at
// /weir/in/NAME and params.json at /weir/params.json, checking their
// digests, runs the command in /weir (or /weir/DIR) with its own
// environment, rewritten from the host's work folder to /weir, and the
// contract's WEIR_* variables, its output passed through; then uploads
// the outputs found at /weir/out/NAME and /weir/metrics.jsonl, writes
// PREFIX/result.json and returns the command's exit code (128+N for a
// signal N). Its own failures return ExitLauncher, ExitCannotRun or
// ExitNotFound, with the reason on standard error and in the result.
// SIGTERM and SIGINT are passed on to the command; once one has arrived,
// the outputs are not uploaded (the result still is).
//
// Run is a main: it writes its messages to standard error, prefixed
// "weir-launcher: ".
func Run(ctx context.Context, args []string) int {
	return run(ctx, args, os.Environ(), os.Stdout, os.Stderr)
}

// launch is one run of the launcher.
type launch struct {
	root   string
	b      *blob.Bucket
	prefix string
	m      Manifest
	store  *artifact.Store
	stderr io.Writer
}

func (l *launch) logf(format string, args ...any) {
	fmt.Fprintf(l.stderr, "weir-launcher: "+format+"\n", args...)
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	l := &launch{stderr: stderr}
	fl := flag.NewFlagSet("weir-launcher", flag.ContinueOnError)
	fl.SetOutput(stderr)
	bucketURL := fl.String("bucket", lookupEnv(environ, EnvBucket), "the bucket's URL (s3://, gs://, azblob://, file://); default $"+EnvBucket)
	fl.StringVar(&l.prefix, "prefix", lookupEnv(environ, EnvPrefix), "the task's key prefix in the bucket; default $"+EnvPrefix)
	fl.StringVar(&l.root, "root", Root, "where the step contract lives")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir-launcher [-bucket URL] [-prefix KEY] [-root DIR] -- COMMAND [ARG...]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return ExitLauncher
	}
	argv := fl.Args()
	switch {
	case len(argv) == 0:
		l.logf("no command to run: give it after --")
		return ExitLauncher
	case *bucketURL == "":
		l.logf("no bucket: give -bucket or $%s", EnvBucket)
		return ExitLauncher
	}
	if err := checkPrefix(l.prefix); err != nil {
		l.logf("%v", err)
		return ExitLauncher
	}
	var err error
	if l.b, err = openBucket(ctx, *bucketURL); err != nil {
		l.logf("%v", err)
		return ExitLauncher
	}
	defer l.b.Close()
	res := &Result{Version: Version}
	fail := func(code int, err error) int {
		l.logf("%v", err)
		res.ExitCode, res.Error = code, err.Error()
		l.writeResult(ctx, res)
		return code
	}
	if err := readJSON(ctx, l.b, key(l.prefix, ManifestObject), &l.m); err != nil {
		if notFound(err) {
			return fail(ExitLauncher, fmt.Errorf("no manifest at %s: Stage writes it before the task starts", key(l.prefix, ManifestObject)))
		}
		return fail(ExitLauncher, fmt.Errorf("reading the manifest: %w", err))
	}
	if err := l.m.check(); err != nil {
		return fail(ExitLauncher, fmt.Errorf("manifest %s: %w", key(l.prefix, ManifestObject), err))
	}
	defer os.RemoveAll(filepath.Join(l.root, storeDir))
	if err := l.placeInputs(ctx); err != nil {
		return fail(ExitLauncher, err)
	}

	env := l.environ(environ)
	prog, err := lookPath(argv[0], lookupEnv(env, "PATH"), filepath.Join(l.root, filepath.FromSlash(l.m.Dir)))
	if err != nil {
		return fail(ExitNotFound, err)
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = filepath.Join(l.root, filepath.FromSlash(l.m.Dir))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fail(ExitCannotRun, fmt.Errorf("starting %s: %w", argv[0], err))
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	stopped := false
	var werr error
wait:
	for {
		select {
		case s := <-sigs:
			stopped = true
			cmd.Process.Signal(s)
		case <-ctx.Done():
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.WithoutCancel(ctx) // what remains is reporting
		case werr = <-waited:
			break wait
		}
	}
	res.DurationMS = time.Since(start).Milliseconds()
	res.ExitCode = exitCode(cmd, werr)
	if stopped {
		res.Error = "stopped by a signal before it ended: outputs not uploaded"
		l.writeResult(ctx, res)
		return res.ExitCode
	}
	if err := l.uploadOutputs(ctx, res); err != nil {
		res.Error = err.Error()
		l.logf("%v", err)
		if res.ExitCode == 0 {
			res.ExitCode = ExitLauncher
		}
	}
	if !l.writeResult(ctx, res) && res.ExitCode == 0 {
		return ExitLauncher
	}
	return res.ExitCode
}

// placeInputs makes the contract's folders and puts params.json and the
// inputs in place, each checked against its digest.
func (l *launch) placeInputs(ctx context.Context) error {
	for _, d := range []string{"in", "out", "tmp"} {
		if err := os.MkdirAll(filepath.Join(l.root, d), 0o755); err != nil {
			return err
		}
	}
	var err error
	if l.store, err = artifact.Open(filepath.Join(l.root, storeDir)); err != nil {
		return err
	}
	place := func(what string, bl Blob, dst string) error {
		if err := getBlob(ctx, l.b, l.store, bl); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := l.store.Materialize(bl.Digest, dst, bl.IsDir); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if p := l.m.Params; p != nil {
		if err := place("params", Blob{Digest: p.Digest, Size: p.Size}, filepath.Join(l.root, "params.json")); err != nil {
			return err
		}
	}
	for _, in := range l.m.Inputs {
		if err := place("input "+in.Name, in.Blob, filepath.Join(l.root, filepath.FromSlash(in.Path))); err != nil {
			return err
		}
	}
	// The copies are in place: the blobs would only double the disk used.
	if _, _, err := l.store.GC(func(string) bool { return false }); err != nil {
		return err
	}
	return nil
}

// environ is the command's environment: the launcher's own, with every
// value naming the host's work folder (or a path below it) moved under
// the root, the launcher's variables left out, and the contract's
// variables set from the manifest.
func (l *launch) environ(environ []string) []string {
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == EnvBucket || k == EnvPrefix {
			continue
		}
		if c, ok := backend.ContainerPath(l.m.WorkDir, v, l.root); ok {
			v = c
		}
		set(k, v)
	}
	at := func(rel string) string { return filepath.Join(l.root, filepath.FromSlash(rel)) }
	if l.m.RunID != "" {
		set("WEIR_RUN_ID", l.m.RunID)
	}
	if l.m.Step != "" {
		set("WEIR_STEP", l.m.Step)
	}
	set("WEIR_METRICS", at("metrics.jsonl"))
	if l.m.Params != nil {
		set("WEIR_PARAMS", at("params.json"))
	} else if _, ok := env["WEIR_PARAMS"]; ok {
		delete(env, "WEIR_PARAMS")
	}
	for _, in := range l.m.Inputs {
		set("WEIR_INPUT_"+backend.EnvName(in.Name), at(in.Path))
	}
	for _, out := range l.m.Outputs {
		set("WEIR_OUTPUT_"+backend.EnvName(out.Name), at(out.Path))
	}
	list := make([]string, 0, len(order))
	for _, k := range order {
		if v, ok := env[k]; ok {
			list = append(list, k+"="+v)
		}
	}
	return list
}

// uploadOutputs uploads each declared output the step wrote, and its
// metrics, recording them in the result. An output the step did not write
// is left out, for the executor to report as it does locally.
func (l *launch) uploadOutputs(ctx context.Context, res *Result) error {
	var errs []error
	for _, out := range l.m.Outputs {
		p := filepath.Join(l.root, filepath.FromSlash(out.Path))
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil && st.Mode()&fs.ModeSymlink != 0 {
			err = fmt.Errorf("it is a symbolic link: write the file itself")
		}
		var obj artifact.Object
		if err == nil {
			obj, err = l.store.PutPath(p)
		}
		if err == nil {
			_, err = putBlob(ctx, l.b, l.store, obj.Digest, obj.Size)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("output %s: %w", out.Name, err))
			continue
		}
		res.Outputs = append(res.Outputs, Artifact{Name: out.Name, Blob: Blob{Digest: obj.Digest, Size: obj.Size, IsDir: obj.IsDir}})
	}
	p := filepath.Join(l.root, "metrics.jsonl")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		d, n, err := l.store.PutFile(p)
		if err == nil {
			_, err = putBlob(ctx, l.b, l.store, d, n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		} else {
			res.Metrics = &Blob{Digest: d, Size: n}
		}
	}
	return errors.Join(errs...)
}

// writeResult writes the result object; it reports whether it could.
func (l *launch) writeResult(ctx context.Context, res *Result) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := writeJSON(ctx, l.b, key(l.prefix, ResultObject), res); err != nil {
		l.logf("%v", err)
		return false
	}
	return true
}

// exitCode is the command's exit code, 128+N when signal N ended it.
func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return ExitLauncher
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// lookPath finds prog as the command's own PATH would (not the
// launcher's); a name with a slash is taken relative to dir.
func lookPath(prog, path, dir string) (string, error) {
	if strings.Contains(prog, "/") {
		p := prog
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("command %s: %w", prog, err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %s: not found in PATH %q", prog, path)
}

func lookupEnv(environ []string, k string) string {
	v := ""
	for _, kv := range environ {
		if name, val, ok := strings.Cut(kv, "="); ok && name == k {
			v = val
		}
	}
	return v
}
