// Package quickstart_test runs the quickstart's step programs directly, under
// the step contract of DESIGN.md section 5 (environment variables in, files
// and JSON-lines metrics out, a per-step work folder that is not the code
// folder), and checks that the pipeline they form really learns: prepare ->
// train (two param sets) -> evaluate -> score -> report.
//
// The programs need python3 (standard library only); without it the tests
// skip.
package quickstart_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// features are the 30 feature columns of data/tumors.csv, in order.
var features = []string{
	"mean_radius", "mean_texture", "mean_perimeter", "mean_area",
	"mean_smoothness", "mean_compactness", "mean_concavity",
	"mean_concave_points", "mean_symmetry", "mean_fractal_dimension",
	"radius_error", "texture_error", "perimeter_error", "area_error",
	"smoothness_error", "compactness_error", "concavity_error",
	"concave_points_error", "symmetry_error", "fractal_dimension_error",
	"worst_radius", "worst_texture", "worst_perimeter", "worst_area",
	"worst_smoothness", "worst_compactness", "worst_concavity",
	"worst_concave_points", "worst_symmetry", "worst_fractal_dimension",
}

// splitOf is the Go twin of split_of in features/prepare.py and
// train/common.py: the first 8 bytes of sha256(id), big-endian, mod 100;
// < 20 test, < 35 validation, else train.
func splitOf(id string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(id)))
	switch b := binary.BigEndian.Uint64(sum[:8]) % 100; {
	case b < 20:
		return "test"
	case b < 35:
		return "validation"
	default:
		return "train"
	}
}

// python returns the python3 interpreter, or skips the test.
func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: install python3 (standard library only) to run the quickstart's step programs")
	}
	return p
}

// stepRun is what a step program did.
type stepRun struct {
	code           int
	stdout, stderr string
	metrics        []map[string]float64
	elapsed        time.Duration
}

// step describes one run of a step program under the contract.
type step struct {
	script  string            // relative to the project root (this folder)
	inputs  map[string]string // name -> path (WEIR_INPUT_<NAME>)
	outputs map[string]string // name -> path (WEIR_OUTPUT_<NAME>)
	params  any               // marshalled to the WEIR_PARAMS file; nil: no file
	rawEnv  map[string]string // extra variables, set last
}

// run runs s in a fresh work folder with a clean WEIR_* environment.
func run(t *testing.T, s step) stepRun {
	t.Helper()
	py := python(t)
	script, err := filepath.Abs(s.script)
	require.NoError(t, err)
	work := t.TempDir()

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEIR_") {
			env = append(env, kv)
		}
	}
	metrics := filepath.Join(work, "metrics.jsonl")
	env = append(env,
		"WEIR_RUN_ID=test-run",
		"WEIR_STEP="+strings.TrimSuffix(s.script, ".py"),
		"WEIR_METRICS="+metrics,
	)
	if s.params != nil {
		b, err := json.Marshal(s.params)
		require.NoError(t, err)
		p := filepath.Join(work, "params.json")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		env = append(env, "WEIR_PARAMS="+p)
	}
	for name, path := range s.inputs {
		env = append(env, "WEIR_INPUT_"+strings.ToUpper(name)+"="+path)
	}
	for name, path := range s.outputs {
		env = append(env, "WEIR_OUTPUT_"+strings.ToUpper(name)+"="+path)
	}
	for k, v := range s.rawEnv {
		env = append(env, k+"="+v)
	}

	cmd := exec.Command(py, script)
	cmd.Dir = work
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r := stepRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "running %s", s.script)
		r.code = exit.ExitCode()
	}
	if b, err := os.ReadFile(metrics); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var m map[string]float64
			require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "%s: metrics line %q is not an object of numbers", s.script, sc.Text())
			r.metrics = append(r.metrics, m)
		}
	}
	return r
}

// mustRun runs s and requires exit 0.
func mustRun(t *testing.T, s step) stepRun {
	t.Helper()
	r := run(t, s)
	require.Equal(t, 0, r.code, "%s failed:\nstdout: %s\nstderr: %s", s.script, r.stdout, r.stderr)
	return r
}

// readCSV reads a whole CSV file, header first.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err, "%s is not valid CSV", path)
	require.NotEmpty(t, recs, "%s is empty", path)
	return recs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), "%s is not valid JSON", path)
}

const tumors = "data/tumors.csv"

// prepare runs features/prepare.py on the tumours and returns the features
// CSV path.
func prepare(t *testing.T, params any) (string, stepRun) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "features.csv")
	data, err := filepath.Abs(tumors)
	require.NoError(t, err)
	r := mustRun(t, step{
		script:  "features/prepare.py",
		inputs:  map[string]string{"data": data},
		outputs: map[string]string{"features": out},
		params:  params,
	})
	return out, r
}

type model struct {
	Format   string             `json:"format"`
	Features []string           `json:"features"`
	Weights  []float64          `json:"weights"`
	Bias     float64            `json:"bias"`
	Params   map[string]float64 `json:"params"`
}

func train(t *testing.T, featuresCSV string, params any) (string, stepRun) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.json")
	r := mustRun(t, step{
		script:  "train/train.py",
		inputs:  map[string]string{"features": featuresCSV},
		outputs: map[string]string{"model": out},
		params:  params,
	})
	return out, r
}

func TestData(t *testing.T) {
	recs := readCSV(t, tumors)
	want := append(append([]string{"id"}, features...), "malignant")
	require.Equal(t, want, recs[0])
	rows := recs[1:]
	require.Len(t, rows, 569)
	malignant := 0
	for i, row := range rows {
		assert.Equal(t, strconv.Itoa(i+1), row[0], "ids run 1..569")
		for j, v := range row[1 : len(row)-1] {
			x, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "row %d column %s", i+1, features[j])
			assert.GreaterOrEqual(t, x, 0.0, "row %d column %s: the spec's schema says >= 0", i+1, features[j])
		}
		require.Contains(t, []string{"0", "1"}, row[len(row)-1])
		if row[len(row)-1] == "1" {
			malignant++
		}
	}
	assert.Equal(t, 212, malignant, "212 malignant, 357 benign")
}

// TestConvertReproducesData re-creates data/tumors.csv from Debian's
// python3-sklearn when its breast_cancer.csv is at hand (installed, or
// extracted and named by WEIR_SKLEARN_BREAST_CANCER_CSV).
func TestConvertReproducesData(t *testing.T) {
	py := python(t)
	src := os.Getenv("WEIR_SKLEARN_BREAST_CANCER_CSV")
	if src == "" {
		src = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
	}
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no %s: see data/convert.py for how to get it (then set WEIR_SKLEARN_BREAST_CANCER_CSV)", src)
	}
	out := filepath.Join(t.TempDir(), "tumors.csv")
	cmd := exec.Command(py, "-B", "data/convert.py", src, out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want, err := os.ReadFile(tumors)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "convert.py output differs from the checked-in %s", tumors)
}

// TestSplitHelpersAgree checks that the split written twice in Python (the
// code folders features/ and train/ are self-contained) and the Go twin
// above give every id the same bucket.
func TestSplitHelpersAgree(t *testing.T) {
	py := python(t)
	const prog = `
import importlib.util, json, sys
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
a = load("prepare", "features/prepare.py")
b = load("common", "train/common.py")
ids = [str(i) for i in range(1, 2001)] + [" 7 ", "abc", "élan"]
print(json.dumps({"ids": ids, "features": [a.split_of(i) for i in ids], "train": [b.split_of(i) for i in ids]}))
`
	cmd := exec.Command(py, "-B", "-c", prog)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var got struct {
		IDs      []string `json:"ids"`
		Features []string `json:"features"`
		Train    []string `json:"train"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Features, len(got.IDs))
	count := map[string]int{}
	for i, id := range got.IDs {
		want := splitOf(id)
		require.Equal(t, want, got.Features[i], "features/prepare.py split of %q", id)
		require.Equal(t, want, got.Train[i], "train/common.py split of %q", id)
		count[want]++
	}
	// Roughly 20/15/65 over 2003 ids.
	assert.InDelta(t, 0.20, float64(count["test"])/float64(len(got.IDs)), 0.03)
	assert.InDelta(t, 0.15, float64(count["validation"])/float64(len(got.IDs)), 0.03)
}

func TestPipeline(t *testing.T) {
	data, err := filepath.Abs(tumors)
	require.NoError(t, err)

	// prepare, with the optional stats output.
	dir := t.TempDir()
	featuresCSV := filepath.Join(dir, "features.csv")
	statsJSON := filepath.Join(dir, "stats.json")
	prep := mustRun(t, step{
		script:  "features/prepare.py",
		inputs:  map[string]string{"data": data},
		outputs: map[string]string{"features": featuresCSV, "stats": statsJSON},
	})
	recs := readCSV(t, featuresCSV)
	require.Equal(t, append(append([]string{"id"}, features...), "malignant"), recs[0])
	require.Len(t, recs, 570)
	splits := map[string]string{}
	labels := map[string]int{}
	count := map[string]int{}
	var sum, sumSq [30]float64
	for _, row := range recs[1:] {
		id := row[0]
		splits[id] = splitOf(id)
		labels[id], _ = strconv.Atoi(row[31])
		count[splits[id]]++
		if splits[id] != "train" {
			continue
		}
		for j := range features {
			x, err := strconv.ParseFloat(row[j+1], 64)
			require.NoError(t, err)
			sum[j] += x
			sumSq[j] += x * x
		}
	}
	n := float64(count["train"])
	for j, f := range features {
		mean := sum[j] / n
		assert.InDelta(t, 0, mean, 1e-9, "%s: z-scores of the training rows have mean 0", f)
		assert.InDelta(t, 1, math.Sqrt(sumSq[j]/n-mean*mean), 1e-9, "%s: and standard deviation 1", f)
	}
	require.Len(t, prep.metrics, 1)
	assert.Equal(t, map[string]float64{
		"rows": 569, "columns": 30,
		"train_rows": float64(count["train"]), "validation_rows": float64(count["validation"]), "test_rows": float64(count["test"]),
	}, prep.metrics[0])
	var stats struct {
		Rows    int `json:"rows"`
		Columns []struct {
			Name string  `json:"name"`
			Mean float64 `json:"mean"`
			Std  float64 `json:"std"`
		} `json:"columns"`
	}
	readJSON(t, statsJSON, &stats)
	assert.Equal(t, count["train"], stats.Rows)
	assert.Len(t, stats.Columns, 30)

	// train: two points of the spec's grid.
	grid := []map[string]any{
		{"lr": 0.5, "l2": 0, "epochs": 200},
		{"lr": 0.05, "l2": 0.01, "epochs": 200},
	}
	models := make([]string, len(grid))
	for i, params := range grid {
		path, r := train(t, featuresCSV, params)
		models[i] = path
		t.Logf("train %v: %.2fs, validation %v", params, r.elapsed.Seconds(), r.metrics)
		assert.Less(t, r.elapsed, 5*time.Second, "train.py must stay fast (measured about 0.35s)")
		require.Len(t, r.metrics, 1)
		for _, k := range []string{"auc", "accuracy", "loss"} {
			require.Contains(t, r.metrics[0], k)
		}
		assert.Greater(t, r.metrics[0]["auc"], 0.9)
		var m model
		readJSON(t, path, &m)
		assert.Equal(t, "weir-quickstart/logistic-regression/v1", m.Format)
		assert.Equal(t, features, m.Features)
		assert.Len(t, m.Weights, 30)
		assert.Equal(t, params["lr"], m.Params["lr"])
	}
	a, _ := os.ReadFile(models[0])
	b, _ := os.ReadFile(models[1])
	assert.NotEqual(t, a, b, "different params give different models")

	// evaluate each model on the held-out test split; the report only for the first.
	report := filepath.Join(t.TempDir(), "evaluation.json")
	for i, path := range models {
		outputs := map[string]string{}
		if i == 0 {
			outputs["report"] = report
		}
		r := mustRun(t, step{
			script:  "train/evaluate.py",
			inputs:  map[string]string{"model": path, "data": featuresCSV},
			outputs: outputs,
			params:  grid[i], // Weir may hand evaluation the trial's params: ignored
		})
		t.Logf("evaluate %v: test %v", grid[i], r.metrics)
		require.Len(t, r.metrics, 1)
		got := r.metrics[0]
		for _, k := range []string{"auc", "accuracy", "precision", "recall"} {
			require.Contains(t, got, k)
		}
		assert.Greater(t, got["auc"], 0.9, "held-out AUC")
		assert.Greater(t, got["accuracy"], 0.85, "held-out accuracy")
	}
	var ev struct {
		Split     string             `json:"split"`
		Rows      int                `json:"rows"`
		Metrics   map[string]float64 `json:"metrics"`
		Confusion map[string]int     `json:"confusion_matrix"`
	}
	readJSON(t, report, &ev)
	assert.Equal(t, "test", ev.Split)
	assert.Equal(t, count["test"], ev.Rows)
	cm := ev.Confusion
	assert.Equal(t, count["test"], cm["tp"]+cm["fp"]+cm["tn"]+cm["fn"])

	// score every row with the first model.
	scores := filepath.Join(t.TempDir(), "out", "scores.csv") // a folder that does not exist yet
	sr := mustRun(t, step{
		script:  "score/score.py",
		inputs:  map[string]string{"model": models[0], "data": featuresCSV},
		outputs: map[string]string{"scores": scores},
	})
	srecs := readCSV(t, scores)
	require.Equal(t, []string{"id", "probability", "prediction"}, srecs[0])
	require.Len(t, srecs, 570)
	positives := 0
	testCM := map[string]int{"tp": 0, "fp": 0, "tn": 0, "fn": 0}
	for i, row := range srecs[1:] {
		assert.Equal(t, recs[i+1][0], row[0], "scores keep the input order")
		p, err := strconv.ParseFloat(row[1], 64)
		require.NoError(t, err)
		require.True(t, p >= 0 && p <= 1, "probability %v", p)
		pred, _ := strconv.Atoi(row[2])
		positives += pred
		if splits[row[0]] == "test" {
			y := labels[row[0]]
			testCM[map[[2]int]string{{1, 1}: "tp", {1, 0}: "fp", {0, 0}: "tn", {0, 1}: "fn"}[[2]int{pred, y}]]++
		}
	}
	assert.Equal(t, cm, testCM, "score.py and evaluate.py agree on the test rows")
	require.Len(t, sr.metrics, 1)
	assert.Equal(t, 569.0, sr.metrics[0]["rows"])
	assert.InDelta(t, float64(positives)/569, sr.metrics[0]["positive_rate"], 1e-12)

	// report on the scores.
	md := filepath.Join(t.TempDir(), "report.md")
	rr := mustRun(t, step{
		script:  "report/report.py",
		inputs:  map[string]string{"scores": scores},
		outputs: map[string]string{"report": md},
	})
	text, err := os.ReadFile(md)
	require.NoError(t, err)
	assert.Contains(t, string(text), "# Batch scoring report")
	assert.Contains(t, string(text), "| rows scored | 569 |")
	assert.Contains(t, string(text), fmt.Sprintf("| predicted malignant | %d |", positives))
	assert.Contains(t, string(text), "[0.9, 1.0] ")
	require.Len(t, rr.metrics, 1)
	assert.Equal(t, 569.0, rr.metrics[0]["rows"])

	// The programs must not write into their code folders (Weir hashes them).
	for _, d := range []string{"features", "train", "score", "report"} {
		assert.NoDirExists(t, filepath.Join(d, "__pycache__"))
	}
}

func TestPrepareColumns(t *testing.T) {
	out, r := prepare(t, map[string]any{"columns": []string{"worst_area", "mean_radius"}})
	recs := readCSV(t, out)
	assert.Equal(t, []string{"id", "worst_area", "mean_radius", "malignant"}, recs[0])
	assert.Equal(t, 2.0, r.metrics[0]["columns"])

	// Training on the subset still learns.
	_, tr := train(t, out, map[string]any{"lr": 0.5})
	assert.Greater(t, tr.metrics[0]["auc"], 0.9)
}

func TestTrainIsDeterministic(t *testing.T) {
	featuresCSV, _ := prepare(t, nil)
	for _, params := range []map[string]any{
		{"lr": 0.2, "l2": 0.01, "epochs": 200},
		{"lr": 0.1, "epochs": 50, "batch_size": 32, "seed": 7},
	} {
		a, _ := train(t, featuresCSV, params)
		b, _ := train(t, featuresCSV, params)
		ab, err := os.ReadFile(a)
		require.NoError(t, err)
		bb, err := os.ReadFile(b)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(ab, bb), "two runs with %v gave different model files", params)
	}
	// The seed matters for mini-batch training.
	a, _ := train(t, featuresCSV, map[string]any{"lr": 0.1, "epochs": 5, "batch_size": 32, "seed": 1})
	b, _ := train(t, featuresCSV, map[string]any{"lr": 0.1, "epochs": 5, "batch_size": 32, "seed": 2})
	var ma, mb model
	readJSON(t, a, &ma)
	readJSON(t, b, &mb)
	assert.NotEqual(t, ma.Weights, mb.Weights)
}

func TestErrors(t *testing.T) {
	featuresCSV, _ := prepare(t, nil)
	modelJSON, _ := train(t, featuresCSV, map[string]any{"lr": 0.2})
	data, err := filepath.Abs(tumors)
	require.NoError(t, err)
	out := func(name string) string { return filepath.Join(t.TempDir(), name) }

	cases := []struct {
		name string
		step step
		want []string // substrings of stderr
	}{
		{"train: lr is not a number", step{
			script: "train/train.py", params: map[string]any{"lr": "abc"},
			inputs: map[string]string{"features": featuresCSV}, outputs: map[string]string{"model": out("m.json")},
		}, []string{"lr must be a number", `"abc"`}},
		{"train: lr is not positive", step{
			script: "train/train.py", params: map[string]any{"lr": 0},
			inputs: map[string]string{"features": featuresCSV}, outputs: map[string]string{"model": out("m.json")},
		}, []string{"lr must be > 0"}},
		{"train: epochs is not an integer", step{
			script: "train/train.py", params: map[string]any{"epochs": 2.5},
			inputs: map[string]string{"features": featuresCSV}, outputs: map[string]string{"model": out("m.json")},
		}, []string{"epochs must be an integer"}},
		{"train: unknown param", step{
			script: "train/train.py", params: map[string]any{"learning_rate": 0.1},
			inputs: map[string]string{"features": featuresCSV}, outputs: map[string]string{"model": out("m.json")},
		}, []string{"unknown learning_rate", "known: lr"}},
		{"train: params file is not JSON", step{
			script: "train/train.py", rawEnv: map[string]string{"WEIR_PARAMS": data},
			inputs: map[string]string{"features": featuresCSV}, outputs: map[string]string{"model": out("m.json")},
		}, []string{"WEIR_PARAMS=", "not valid JSON"}},
		{"train: missing input variable", step{
			script: "train/train.py", outputs: map[string]string{"model": out("m.json")},
		}, []string{"WEIR_INPUT_FEATURES is not set"}},
		{"train: missing input file", step{
			script: "train/train.py", inputs: map[string]string{"features": out("nope.csv")},
			outputs: map[string]string{"model": out("m.json")},
		}, []string{"WEIR_INPUT_FEATURES=", "no such file"}},
		{"train: missing output variable", step{
			script: "train/train.py", inputs: map[string]string{"features": featuresCSV},
		}, []string{"WEIR_OUTPUT_MODEL is not set"}},
		{"train: unlabelled features", step{
			script: "train/train.py", inputs: map[string]string{"features": writeFile(t, "id,x\n1,0.5\n")},
			outputs: map[string]string{"model": out("m.json")},
		}, []string{"no 'malignant' label column"}},
		{"prepare: missing input variable", step{
			script: "features/prepare.py", outputs: map[string]string{"features": out("f.csv")},
		}, []string{"WEIR_INPUT_DATA is not set"}},
		{"prepare: unknown column", step{
			script: "features/prepare.py", params: map[string]any{"columns": []string{"mean_radius", "radius"}},
			inputs: map[string]string{"data": data}, outputs: map[string]string{"features": out("f.csv")},
		}, []string{"columns radius are not feature columns"}},
		{"prepare: bad number", step{
			script: "features/prepare.py", inputs: map[string]string{"data": writeFile(t, "id,a,malignant\n1,2,0\n2,x,1\n")},
			outputs: map[string]string{"features": out("f.csv")},
		}, []string{":3: column a: 'x' is not a finite number"}},
		{"evaluate: missing model variable", step{
			script: "train/evaluate.py", inputs: map[string]string{"data": featuresCSV},
		}, []string{"WEIR_INPUT_MODEL is not set"}},
		{"evaluate: not a model", step{
			script: "train/evaluate.py", inputs: map[string]string{"model": writeFile(t, "{}"), "data": featuresCSV},
		}, []string{"is not a model written by train/train.py"}},
		{"score: missing data variable", step{
			script: "score/score.py", inputs: map[string]string{"model": modelJSON},
			outputs: map[string]string{"scores": out("s.csv")},
		}, []string{"WEIR_INPUT_DATA is not set"}},
		{"score: data lacks the model's features", step{
			script: "score/score.py", inputs: map[string]string{"model": modelJSON, "data": writeFile(t, "id,mean_radius\n1,0.1\n")},
			outputs: map[string]string{"scores": out("s.csv")},
		}, []string{"lacks the model's feature columns mean_texture"}},
		{"report: missing scores variable", step{
			script: "report/report.py", outputs: map[string]string{"report": out("r.md")},
		}, []string{"WEIR_INPUT_SCORES is not set"}},
		{"report: missing output variable", step{
			script: "report/report.py", inputs: map[string]string{"scores": writeFile(t, "id,probability,prediction\n1,0.5,1\n")},
		}, []string{"WEIR_OUTPUT_REPORT is not set"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, c.step)
			assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
			assert.True(t, strings.HasPrefix(r.stderr, c.step.script+": error: "), "stderr names the program: %q", r.stderr)
			for _, w := range c.want {
				assert.Contains(t, r.stderr, w)
			}
			assert.NotContains(t, r.stderr, "Traceback", "a clear message, not a Python traceback")
			assert.Empty(t, r.metrics, "a failed step records no metrics")
		})
	}
}

// writeFile writes content to a temporary file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}
