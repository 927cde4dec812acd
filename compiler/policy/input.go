package policy

import (
	"maps"
	"reflect"
	"runtime"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"weir.dev/weir/schema"
)

// Input is what policies see as `input`:
//
//	{
//	  project: the IR, field names as schema.Project's json tags,
//	  plan:    the plan (schema.Plan) without its findings, checksum, the
//	           steps' lowered tasks and source positions,
//	  lock:    {images: {REF: DIGEST}},
//	  changes: the review diff (null outside weir review),
//	  context: {user, git: {commit, branch}, environment},
//	}
//
// A nil Project or Plan leaves its key out, so `input.plan.steps` is
// undefined rather than an error in `weir policy check` without a plan.
// Source positions are not part of the input: a finding names a path and
// Weir maps it back through the source map.
type Input struct {
	Project *schema.Project
	Plan    *schema.Plan
	Lock    Lock
	// Changes is the review diff; any value encoding/json can encode.
	Changes any
	Context Context
}

// Lock is the part of weir.lock policies see.
type Lock struct {
	// Images maps an image reference as written in the spec to the digest
	// it is pinned to ("sha256:…").
	Images map[string]string `json:"images"`
}

// Context is who runs Weir, where, on what commit.
type Context struct {
	User        string `json:"user"`
	Git         Git    `json:"git"`
	Environment string `json:"environment"`
}

// Git names the commit and branch the spec comes from.
type Git struct {
	Commit string `json:"commit"`
	Branch string `json:"branch"`
}

// inputConverter converts the IR and the plan, leaving out what policies
// should not depend on: the lowered tasks (backend-specific, large), the
// plan's own findings and checksum, and source positions.
var inputConverter = &converter{skip: map[reflect.Type]map[string]bool{
	reflect.TypeFor[schema.Plan]():   {"Findings": true, "Checksum": true},
	reflect.TypeFor[schema.Step]():   {"Task": true, "Source": true},
	reflect.TypeFor[schema.Change](): {"Source": true},
}}

var (
	keyProject = ast.StringTerm("project")
	keyPlan    = ast.StringTerm("plan")
	keyLock    = ast.StringTerm("lock")
	keyChanges = ast.StringTerm("changes")
	keyContext = ast.StringTerm("context")
	keyImages  = ast.StringTerm("images")
)

// parallelSteps is the number of plan steps from which Value converts
// them on several goroutines.
const parallelSteps = 2000

var (
	keySteps = ast.StringTerm("steps")
	stepType = reflect.TypeFor[*schema.Step]()
)

// Value builds the input document as an OPA value, straight from the Go
// structs (no JSON text in between). A large plan's steps are converted in
// parallel, in chunks, while this goroutine converts the rest.
func (in Input) Value() (ast.Value, error) {
	v, err := in.convert(nil)
	if err != nil {
		return nil, err
	}
	return v.value(), nil
}

// inputValue is a converted input. Its value is a new lazy object each
// time when the plan's steps are left unconverted (ast.LazyObject records
// what it converts, and one goroutine may use it at a time), the same
// object otherwise.
type inputValue struct {
	obj ast.Object
	// plan, when set, is the plan without its steps, which value adds
	// as a stand-in calling touched.
	plan    ast.Object
	touched func()
}

func (v *inputValue) value() ast.Value {
	if v.plan == nil {
		return v.obj
	}
	// An object's hash is made of its values' hashes, which would
	// convert the stand-in: the lazy plan can only be in a lazy object.
	plan := lazyObject(v.plan, map[string]any{"steps": deferred{v.touched}})
	return lazyObject(v.obj, map[string]any{"plan": plan})
}

// withSteps is v, the lazy input of in, made whole: the plan's steps
// converted and set in a copy of its plan, in a copy of its object; the
// rest is not converted again.
func (in Input) withSteps(v *inputValue) (*inputValue, error) {
	if v.plan == nil {
		return v, nil
	}
	var t *ast.Term
	if len(in.Plan.Steps) >= parallelSteps && runtime.GOMAXPROCS(0) > 1 {
		var err error
		if t, err = convertSteps(in.Plan.Steps, min(runtime.GOMAXPROCS(0), 4))(); err != nil {
			return nil, err
		}
	} else {
		c := inputConverter.state()
		enc := inputConverter.encoder(reflect.TypeOf(in.Plan.Steps))
		var err error
		if t, err = enc(c, reflect.ValueOf(in.Plan.Steps)); err != nil {
			return nil, err
		}
	}
	plan := with(v.plan, keySteps, t)
	return &inputValue{obj: with(v.obj, keyPlan, ast.NewTerm(plan))}, nil
}

// with is a copy of obj with key set to value, sharing obj's terms (Copy
// would copy them all).
func with(obj ast.Object, key, value *ast.Term) ast.Object {
	out := ast.NewObjectWithCapacity(obj.Len() + 1)
	obj.Foreach(func(k, v *ast.Term) {
		if !k.Equal(key) {
			out.Insert(k, v)
		}
	})
	out.Insert(key, value)
	return out
}

// lazy is the input with the plan's steps, nine tenths of the input of a
// large plan and read by few policies, left unconverted until evaluation
// reads them: in its values, input.plan is a lazy object (ast.LazyObject)
// whose steps key holds a stand-in, and the first time evaluation converts
// the stand-in (reading input.plan.steps, or all of input.plan), touched is
// called and the steps read as an empty array. An evaluation during which
// touched was called must be discarded and made again over the whole input
// (withSteps); one during which it was not never saw the steps, and its
// result is that of Value.
func (in Input) lazy(touched func()) (*inputValue, error) {
	return in.convert(touched)
}

func (in Input) convert(touched func()) (*inputValue, error) {
	var steps func() (*ast.Term, error)
	plan := in.Plan
	lazy := touched != nil && plan != nil && len(plan.Steps) > 0
	if plan != nil && (lazy || len(plan.Steps) >= parallelSteps && runtime.GOMAXPROCS(0) > 1) {
		if !lazy {
			steps = convertSteps(plan.Steps, min(runtime.GOMAXPROCS(0), 4))
			defer steps() // an error below must not leave the goroutines running
		}
		shallow := *plan
		shallow.Steps = nil
		plan = &shallow
	}
	c := inputConverter.state()
	out := &inputValue{obj: ast.NewObjectWithCapacity(5), touched: touched}
	obj := out.obj
	if in.Project != nil {
		var v ast.Value
		var err error
		if n := runtime.GOMAXPROCS(0); n > 1 && steps == nil && largeProject(in.Project) {
			v, err = inputConverter.parallelStruct(reflect.ValueOf(in.Project).Elem(), min(n, 4))
		} else {
			v, err = c.value(in.Project)
		}
		if err != nil {
			return nil, err
		}
		obj.Insert(keyProject, ast.NewTerm(v))
	}
	if plan != nil {
		v, err := c.value(plan)
		if err != nil {
			return nil, err
		}
		switch {
		case lazy:
			out.plan = v.(ast.Object)
		case steps != nil:
			t, err := steps()
			if err != nil {
				return nil, err
			}
			v.(ast.Object).Insert(keySteps, t)
		}
		if !lazy {
			obj.Insert(keyPlan, ast.NewTerm(v))
		}
	}
	images := ast.NewObjectWithCapacity(len(in.Lock.Images))
	for ref, digest := range in.Lock.Images {
		images.Insert(c.str(ref), c.str(digest))
	}
	obj.Insert(keyLock, ast.ObjectTerm([2]*ast.Term{keyImages, ast.NewTerm(images)}))
	changes, err := c.value(in.Changes)
	if err != nil {
		return nil, err
	}
	obj.Insert(keyChanges, ast.NewTerm(changes))
	ctx, err := c.value(in.Context)
	if err != nil {
		return nil, err
	}
	obj.Insert(keyContext, ast.NewTerm(ctx))
	return out, nil
}

// parallelElements is the number of elements from which a project's
// sections are converted on several goroutines, unless its plan's steps
// are.
const parallelElements = 1000

// large reports whether the input is large enough for its policies to be
// evaluated on several goroutines: a large project or plan.
func (in Input) large() bool {
	return in.Project != nil && largeProject(in.Project) || in.Plan != nil && len(in.Plan.Steps) >= parallelSteps
}

func largeProject(p *schema.Project) bool {
	n := len(p.Datasets) + len(p.Features) + len(p.Training) + len(p.Models) +
		len(p.Serving) + len(p.Monitoring) + len(p.Batch) + len(p.Tasks)
	return n >= parallelElements
}

// lazyObject is obj as an ast.LazyObject, with more keys: its values are
// converted values already (ast.LazyObject hands an ast.Value back as it
// is), more's are converted when evaluation reads them.
func lazyObject(obj ast.Object, more map[string]any) ast.Object {
	native := make(map[string]any, obj.Len()+len(more))
	obj.Foreach(func(k, v *ast.Term) {
		if s, ok := k.Value.(ast.String); ok {
			native[string(s)] = v.Value
		}
	})
	maps.Copy(native, more)
	return ast.LazyObject(native)
}

// deferred stands in for a value evaluation should not need. OPA converts
// a Go value it does not know through its JSON (util.RoundTrip), so
// MarshalJSON is called when, and only when, evaluation reads the value:
// it reports that and gives an empty array (null would make more policies
// fail before the evaluation is stopped). TestLazySteps holds OPA to that.
type deferred struct{ touched func() }

func (d deferred) MarshalJSON() ([]byte, error) {
	d.touched()
	return []byte("[]"), nil
}

// convertSteps starts converting steps in n chunks, each on a goroutine
// with its own conversion, and returns a function that waits for them and
// gives the array (once; later calls return the same).
func convertSteps(steps []*schema.Step, n int) func() (*ast.Term, error) {
	terms := make([]*ast.Term, len(steps))
	errs := make([]error, n)
	enc := inputConverter.encoder(stepType)
	var wg sync.WaitGroup
	for i := range n {
		lo, hi := i*len(steps)/n, (i+1)*len(steps)/n
		wg.Go(func() {
			c := inputConverter.state()
			for j := lo; j < hi; j++ {
				t, err := enc(c, reflect.ValueOf(steps[j]))
				if err != nil {
					errs[i] = err
					return
				}
				terms[j] = t
			}
		})
	}
	return sync.OnceValues(func() (*ast.Term, error) {
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		return ast.ArrayTerm(terms...), nil
	})
}
