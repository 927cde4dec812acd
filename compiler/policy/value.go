package policy

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// converter turns Go values into OPA values directly, with the result
// encoding/json followed by a JSON decode would give (field names from json
// tags, omitempty and omitzero honoured, embedded structs flattened,
// Marshaler and TextMarshaler types through their methods), but without the
// text in between. TestValueMatchesJSON holds it to that.
//
// Like encoding/json it builds one encoder function per type, once, so a
// conversion does no reflection on types, only on values.
//
// skip drops named fields of given struct types (the lowered task of a step,
// source positions) that policies do not see.
type converter struct {
	skip     map[reflect.Type]map[string]bool
	encoders sync.Map // reflect.Type -> encoderFunc
}

type encoderFunc func(c *conversion, v reflect.Value) (*ast.Term, error)

// conversion is one run of a converter. Strings seen in it share one term
// (kinds, actions, backends, images repeat across thousands of steps), and
// so does everything reached through one pointer or map: the compiler
// shares a training's resources and env with each of its trial steps, and
// they are converted once. (Terms are never changed once
// built, so sharing them is safe.)
type conversion struct {
	*converter
	strs map[string]*ast.Term
	memo map[memoKey]*ast.Term
	// pairs is a stack of the key-value pairs of the objects being built:
	// an object's are appended above those of the objects that contain it
	// and popped once it is made, in one allocation (ast.NewObject).
	pairs [][2]*ast.Term
	// slab holds terms allocated ahead, many at a time (term).
	slab []ast.Term
}

// term is ast.NewTerm(v) from a slab: one allocation every slabSize
// terms instead of one a term (the input of 10,000 steps has 600,000).
func (c *conversion) term(v ast.Value) *ast.Term {
	if len(c.slab) == 0 {
		c.slab = make([]ast.Term, slabSize)
	}
	t := &c.slab[0]
	c.slab = c.slab[1:]
	t.Value = v
	return t
}

const slabSize = 256

// memoKey identifies what a pointer or map refers to.
type memoKey struct {
	typ reflect.Type
	ptr uintptr
	len int
}

func (c *converter) state() *conversion {
	return &conversion{converter: c, strs: map[string]*ast.Term{}, memo: map[memoKey]*ast.Term{}}
}

// memoized converts v with enc once per referent.
func (c *conversion) memoized(v reflect.Value, n int, enc encoderFunc) (*ast.Term, error) {
	k := memoKey{typ: v.Type(), ptr: v.Pointer(), len: n}
	if t, ok := c.memo[k]; ok {
		return t, nil
	}
	t, err := enc(c, v)
	if err != nil {
		return nil, err
	}
	c.memo[k] = t
	return t, nil
}

// value converts x; nil gives null.
func (c *converter) value(x any) (ast.Value, error) {
	return c.state().value(x)
}

func (c *conversion) value(x any) (ast.Value, error) {
	if x == nil {
		return ast.NullValue, nil
	}
	if v, ok := x.(ast.Value); ok {
		return v, nil
	}
	rv := reflect.ValueOf(x)
	t, err := c.encoder(rv.Type())(c, rv)
	if err != nil {
		return nil, err
	}
	return t.Value, nil
}

// str returns the term of s, shared for short strings (long ones, such as
// addresses and digests, rarely repeat and are not worth a look-up).
func (c *conversion) str(s string) *ast.Term {
	if len(s) > 24 {
		return c.term(ast.String(s))
	}
	if t, ok := c.strs[s]; ok {
		return t
	}
	t := ast.InternedTerm(s)
	c.strs[s] = t
	return t
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// encoder returns the encoder of t, building it on first use. A recursive
// type gets a forwarding encoder while its own is being built.
func (c *converter) encoder(t reflect.Type) encoderFunc {
	if f, ok := c.encoders.Load(t); ok {
		return f.(encoderFunc)
	}
	var (
		wg sync.WaitGroup
		f  encoderFunc
	)
	wg.Add(1)
	fi, loaded := c.encoders.LoadOrStore(t, encoderFunc(func(cs *conversion, v reflect.Value) (*ast.Term, error) {
		wg.Wait()
		return f(cs, v)
	}))
	if loaded {
		return fi.(encoderFunc)
	}
	f = c.newEncoder(t, true)
	wg.Done()
	c.encoders.Store(t, f)
	return f
}

// newEncoder builds t's encoder; allowAddr lets a value whose pointer has
// the marshaling method use it when the value is addressable.
func (c *converter) newEncoder(t reflect.Type, allowAddr bool) encoderFunc {
	if t == rawMessageType {
		return rawEncoder
	}
	if t.Kind() != reflect.Pointer && allowAddr && reflect.PointerTo(t).Implements(jsonMarshalerType) {
		return condAddr(marshalerEncoder, c.newEncoder(t, false))
	}
	if t.Implements(jsonMarshalerType) {
		return marshalerEncoder
	}
	if t.Kind() != reflect.Pointer && allowAddr && reflect.PointerTo(t).Implements(textMarshalerType) {
		return condAddr(textEncoder, c.newEncoder(t, false))
	}
	if t.Implements(textMarshalerType) {
		return textEncoder
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(_ *conversion, v reflect.Value) (*ast.Term, error) { return ast.InternedTerm(v.Bool()), nil }
	case reflect.String:
		return func(c *conversion, v reflect.Value) (*ast.Term, error) { return c.str(v.String()), nil }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(_ *conversion, v reflect.Value) (*ast.Term, error) { return ast.InternedTerm(v.Int()), nil }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(_ *conversion, v reflect.Value) (*ast.Term, error) {
			if u := v.Uint(); u <= math.MaxInt64 {
				return ast.InternedTerm(int64(u)), nil
			}
			return ast.UIntNumberTerm(v.Uint()), nil
		}
	case reflect.Float32, reflect.Float64:
		bits := t.Bits()
		return func(c *conversion, v reflect.Value) (*ast.Term, error) {
			f := v.Float()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("unsupported number %v", f)
			}
			return c.term(ast.Number(strconv.FormatFloat(f, 'g', -1, bits))), nil
		}
	case reflect.Interface:
		return func(c *conversion, v reflect.Value) (*ast.Term, error) {
			if v.IsNil() {
				return ast.NullTerm(), nil
			}
			e := v.Elem()
			return c.encoder(e.Type())(c, e)
		}
	case reflect.Pointer:
		elem := c.encoder(t.Elem())
		deref := func(c *conversion, v reflect.Value) (*ast.Term, error) { return elem(c, v.Elem()) }
		return func(c *conversion, v reflect.Value) (*ast.Term, error) {
			if v.IsNil() {
				return ast.NullTerm(), nil
			}
			return c.memoized(v, 0, deref)
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(jsonMarshalerType) && !reflect.PointerTo(t.Elem()).Implements(textMarshalerType) {
			return func(_ *conversion, v reflect.Value) (*ast.Term, error) {
				if v.IsNil() {
					return ast.NullTerm(), nil
				}
				return ast.StringTerm(base64.StdEncoding.EncodeToString(v.Bytes())), nil
			}
		}
		arr := c.arrayEncoder(t)
		return func(c *conversion, v reflect.Value) (*ast.Term, error) {
			if v.IsNil() {
				return ast.NullTerm(), nil
			}
			return arr(c, v)
		}
	case reflect.Array:
		return c.arrayEncoder(t)
	case reflect.Map:
		return c.mapEncoder(t)
	case reflect.Struct:
		return c.structEncoder(t)
	}
	return func(*conversion, reflect.Value) (*ast.Term, error) {
		return nil, fmt.Errorf("unsupported type %s", t)
	}
}

func condAddr(addr, other encoderFunc) encoderFunc {
	return func(c *conversion, v reflect.Value) (*ast.Term, error) {
		if v.CanAddr() {
			return addr(c, v.Addr())
		}
		return other(c, v)
	}
}

// marshalerEncoder converts a json.Marshaler through its JSON text: rare
// types (json.RawMessage in a step's config) whose shape only their method
// knows.
func marshalerEncoder(_ *conversion, v reflect.Value) (*ast.Term, error) {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return ast.NullTerm(), nil
	}
	b, err := v.Interface().(json.Marshaler).MarshalJSON()
	if err != nil {
		return nil, err
	}
	var x any
	if err := util.UnmarshalJSON(b, &x); err != nil {
		return nil, err
	}
	val, err := ast.InterfaceToValue(x)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(val), nil
}

func textEncoder(c *conversion, v reflect.Value) (*ast.Term, error) {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return ast.NullTerm(), nil
	}
	b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return nil, err
	}
	return c.str(string(b)), nil
}

func (c *converter) arrayEncoder(t reflect.Type) encoderFunc {
	elem := c.encoder(t.Elem())
	return func(c *conversion, v reflect.Value) (*ast.Term, error) {
		n := v.Len()
		terms := make([]*ast.Term, n)
		for i := range n {
			e, err := elem(c, v.Index(i))
			if err != nil {
				return nil, err
			}
			terms[i] = e
		}
		return c.term(ast.NewArray(terms...)), nil
	}
}

func (c *converter) mapEncoder(t reflect.Type) encoderFunc {
	var key func(reflect.Value) (string, error)
	switch {
	case t.Key().Kind() == reflect.String:
		key = func(k reflect.Value) (string, error) { return k.String(), nil }
	case t.Key().Implements(textMarshalerType):
		key = func(k reflect.Value) (string, error) {
			if k.Kind() == reflect.Pointer && k.IsNil() {
				return "", nil
			}
			b, err := k.Interface().(encoding.TextMarshaler).MarshalText()
			return string(b), err
		}
	default:
		switch t.Key().Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			key = func(k reflect.Value) (string, error) { return strconv.FormatInt(k.Int(), 10), nil }
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			key = func(k reflect.Value) (string, error) { return strconv.FormatUint(k.Uint(), 10), nil }
		default:
			return func(*conversion, reflect.Value) (*ast.Term, error) {
				return nil, fmt.Errorf("unsupported map key type %s", t.Key())
			}
		}
	}
	elem := c.encoder(t.Elem())
	// String keys are distinct, so the object is built in one go; keys of
	// other types might give one text twice, and Insert keeps the last.
	distinct := t.Key().Kind() == reflect.String
	var enc encoderFunc
	enc = func(c *conversion, v reflect.Value) (*ast.Term, error) {
		kv := reflect.New(t.Key()).Elem()
		vv := reflect.New(t.Elem()).Elem()
		mark := len(c.pairs)
		defer func() { c.pairs = c.pairs[:mark] }()
		it := v.MapRange()
		for it.Next() {
			kv.SetIterKey(it)
			vv.SetIterValue(it)
			k, err := key(kv)
			if err != nil {
				return nil, err
			}
			e, err := elem(c, vv)
			if err != nil {
				return nil, err
			}
			c.pairs = append(c.pairs, [2]*ast.Term{c.str(k), e})
		}
		if distinct {
			return c.term(ast.NewObject(c.pairs[mark:]...)), nil
		}
		obj := ast.NewObjectWithCapacity(len(c.pairs) - mark)
		for _, kv := range c.pairs[mark:] {
			obj.Insert(kv[0], kv[1])
		}
		return c.term(obj), nil
	}
	return func(c *conversion, v reflect.Value) (*ast.Term, error) {
		if v.IsNil() {
			return ast.NullTerm(), nil
		}
		return c.memoized(v, 0, enc)
	}
}

type fieldCodec struct {
	index     []int
	key       *ast.Term
	omitEmpty bool
	omitZero  bool
	typ       reflect.Type
	enc       encoderFunc
}

func (c *converter) structEncoder(t reflect.Type) encoderFunc {
	fields := c.fields(t)
	var once sync.Once
	return func(cs *conversion, v reflect.Value) (*ast.Term, error) {
		// Field encoders are resolved on first use, so a type that
		// contains itself does not recurse while being built.
		once.Do(func() {
			for i := range fields {
				fields[i].enc = c.encoder(fields[i].typ)
			}
		})
		mark := len(cs.pairs)
		for i := range fields {
			f := &fields[i]
			e, err := cs.field(f, v)
			if err != nil {
				cs.pairs = cs.pairs[:mark]
				return nil, err
			}
			if e != nil {
				cs.pairs = append(cs.pairs, [2]*ast.Term{f.key, e})
			}
		}
		// The fields' names are distinct (fields drops clashes).
		obj := ast.NewObject(cs.pairs[mark:]...)
		cs.pairs = cs.pairs[:mark]
		return cs.term(obj), nil
	}
}

// field converts field f of struct v; nil when JSON leaves it out (a nil
// embedded pointer on the way, omitempty, omitzero).
func (cs *conversion) field(f *fieldCodec, v reflect.Value) (*ast.Term, error) {
	fv, ok := fieldByIndex(v, f.index)
	if !ok || f.omitEmpty && isEmpty(fv) || f.omitZero && fv.IsZero() {
		return nil, nil
	}
	e, err := f.enc(cs, fv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.key.Value, err)
	}
	return e, nil
}

// structFields lists the JSON fields of struct type t with their
// encoders.
func (c *converter) structFields(t reflect.Type) []fieldCodec {
	fields := c.fields(t)
	for i := range fields {
		fields[i].enc = c.encoder(fields[i].typ)
	}
	return fields
}

// parallelStruct converts struct v as its encoder would, its fields shared
// out between n goroutines, each with its own conversion (a large
// project's sections).
func (c *converter) parallelStruct(v reflect.Value, n int) (ast.Value, error) {
	fields := c.structFields(v.Type())
	terms := make([]*ast.Term, len(fields))
	errs := make([]error, len(fields))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			cs := c.state()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(fields) {
					return
				}
				terms[i], errs[i] = cs.field(&fields[i], v)
			}
		})
	}
	wg.Wait()
	pairs := make([][2]*ast.Term, 0, len(fields))
	for i, t := range terms {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if t != nil {
			pairs = append(pairs, [2]*ast.Term{fields[i].key, t})
		}
	}
	return ast.NewObject(pairs...), nil
}

// fieldByIndex is v.FieldByIndex that reports false instead of panicking
// when an embedded pointer on the way is nil.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	if len(index) == 1 {
		return v.Field(index[0]), true
	}
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// fields lists the JSON fields of struct type t, following encoding/json's
// rules: embedded structs without a tag are flattened; among fields with
// one name the shallowest wins, a tagged one breaking a tie, and a
// remaining tie drops the name.
func (c *converter) fields(t reflect.Type) []fieldCodec {
	type candidate struct {
		fieldCodec
		name   string
		depth  int
		tagged bool
	}
	var all []candidate
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, idx, depth+1)
					continue
				}
			}
			if !f.IsExported() || c.skip[t][f.Name] {
				continue
			}
			tagged := name != ""
			if name == "" {
				name = f.Name
			}
			all = append(all, candidate{
				fieldCodec: fieldCodec{
					index:     idx,
					omitEmpty: hasOpt(opts, "omitempty"),
					omitZero:  hasOpt(opts, "omitzero"),
					typ:       f.Type,
				},
				name: name, depth: depth, tagged: tagged,
			})
		}
	}
	walk(t, nil, 0)
	best := map[string]int{}
	drop := map[string]bool{}
	for i, cand := range all {
		j, ok := best[cand.name]
		if !ok {
			best[cand.name] = i
			continue
		}
		prev := all[j]
		switch {
		case cand.depth < prev.depth || cand.depth == prev.depth && cand.tagged && !prev.tagged:
			best[cand.name] = i
			delete(drop, cand.name)
		case cand.depth == prev.depth && cand.tagged == prev.tagged:
			drop[cand.name] = true
		}
	}
	var out []fieldCodec
	for i, cand := range all {
		if best[cand.name] != i || drop[cand.name] {
			continue
		}
		f := cand.fieldCodec
		f.key = ast.InternedTerm(cand.name)
		out = append(out, f)
	}
	return out
}

func hasOpt(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}
