package graph

import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"weir.dev/weir/schema"
)

// keyVersion is part of every cache key: bump it when the meaning of a step
// kind changes so old results are not reused.
const keyVersion = "weir-key-1"

// parallelKeys is the number of steps from which keys computes them on
// several goroutines (a variable for tests).
var parallelKeys = 1000

// keys computes the steps' cache keys (steps in topological order). A key
// takes the keys of the step's inputs, so a large graph is keyed level by
// level (a step's level is one more than the highest of its inputs'), the
// steps of one level on several goroutines; the keys are those key gives
// one step after the other.
func (b *builder) keys(steps []*schema.Step) {
	workers := min(runtime.GOMAXPROCS(0), 4)
	if workers < 2 || len(steps) < parallelKeys {
		for _, s := range steps {
			b.key(s)
		}
		return
	}
	level := make(map[*schema.Step]int, len(steps))
	var levels [][]*schema.Step
	for _, s := range steps {
		l := 0
		for _, in := range s.Inputs {
			up := b.byAddr[in.Step]
			if up == nil {
				continue
			}
			ul, ok := level[up]
			if !ok { // an input after the step: key it one after the other
				for _, s := range steps {
					b.key(s)
				}
				return
			}
			l = max(l, ul+1)
		}
		level[s] = l
		if l == len(levels) {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], s)
	}
	b.shared = &sync.Mutex{}
	defer func() { b.shared = nil }()
	for _, ls := range levels {
		var wg sync.WaitGroup
		for i := range workers {
			part := ls[i*len(ls)/workers : (i+1)*len(ls)/workers]
			wg.Go(func() {
				for _, s := range part {
					b.key(s)
				}
			})
		}
		wg.Wait()
	}
}

// lockShared holds b.shared, when keys runs on several goroutines, for
// what key shares between steps: diagnostics and AliasDigest.
func (b *builder) lockShared() func() {
	if b.shared == nil {
		return func() {}
	}
	b.shared.Lock()
	return b.shared.Unlock
}

// key computes a step's cache key from its parts: what it runs (kind,
// command, image, environment without secret values, code digest, builtin
// config), its parameters (minus cacheIgnore), its outputs' names and,
// for each input, the upstream step's key. Resources, retries, timeouts and
// the backend are left out: they change how a step runs, not what it
// produces, so the same step on another backend reuses its results.
func (b *builder) key(s *schema.Step) {
	parts := map[string]string{"kind": keyVersion + ":" + s.Kind}
	ignore := map[string]bool{}
	if s.Run != nil {
		for _, k := range b.cacheIgnore(s) {
			ignore[k] = true
		}
		parts["command"] = digestJSON(s.Run.Command)
		if s.Run.Image != "" {
			parts["image"] = s.Run.Image
			if d, ok := b.opts.ImagePins[s.Run.Image]; ok {
				parts["image"] = s.Run.Image + "@" + d
			}
		}
		env := map[string]schema.EnvVar{}
		for k, v := range s.Run.Env {
			if !ignore[k] {
				env[k] = v // a secret contributes its reference, never its value
			}
		}
		if len(env) > 0 {
			parts["env"] = digestJSON(env)
		}
		if s.Run.Code != "" {
			d, err := b.opts.Digests.Dir(filepath.Join(b.opts.Dir, s.Run.Code))
			if err != nil {
				unlock := b.lockShared()
				b.errorf("missing-code", s.Element, "%s: reading code folder %s: %v", s.Address, s.Run.Code, err)
				unlock()
			}
			s.Run.CodeDigest = d
			parts["code"] = d
		}
		if s.Run.Workers > 1 {
			parts["workers"] = digestJSON(s.Run.Workers)
		}
	}
	if len(s.Params) > 0 {
		params := map[string]any{}
		for k, v := range s.Params {
			if !ignore[k] {
				params[k] = v
			}
		}
		parts["params"] = digestJSON(params)
	}
	if len(s.Config) > 0 {
		parts["config"] = digestBytes(s.Config)
	}
	if len(s.Outputs) > 0 {
		parts["outputs"] = digestJSON(s.Outputs)
	}
	for _, in := range s.Inputs {
		if up := b.byAddr[in.Step]; up != nil {
			parts["input:"+in.Name] = up.CacheKey + "/" + in.Output
		}
	}
	if model, alias, ok := schema.AliasInput(s); ok {
		// The model comes from whatever version the alias points at, not
		// from this plan's register step: key on that version's content.
		digest, found := "", false
		if b.opts.AliasDigest != nil {
			unlock := b.lockShared()
			digest, found = b.opts.AliasDigest(model, alias)
			unlock()
		}
		if !found {
			digest = "none"
		}
		delete(parts, "input:model")
		parts[schema.AliasKeyPart] = digest
	}
	// Ordering-only dependencies (a validation gate) change nothing the
	// step reads, so they stay out of the key.
	s.KeyParts = parts
	s.CacheKey = cacheKey(parts)
}

// cacheKey is schema.CacheKey(parts) without encoding/json's reflection
// and map sorting when every key and value is plain (printable ASCII that
// JSON writes as it is: key parts are digests, kinds, image references and
// paths): the same bytes into the same hash. TestCacheKey holds it to
// schema.CacheKey.
func cacheKey(parts map[string]string) string {
	keys := make([]string, 0, len(parts))
	size := 2
	for k, v := range parts {
		if !plain(k) || !plain(v) {
			return schema.CacheKey(parts)
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	sort.Strings(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':', '"')
		b = append(b, parts[k]...)
		b = append(b, '"')
	}
	b = append(b, '}')
	return digestBytes(b)
}

// plain reports whether encoding/json writes s between quotes as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

func (b *builder) cacheIgnore(s *schema.Step) []string {
	e := b.elems[s.Element]
	switch e.section {
	case "training":
		t := b.p.Training[e.name]
		if s.Kind == "evaluate" {
			return t.Evaluate.CacheIgnore
		}
		return t.CacheIgnore
	case "features":
		return b.p.Features[e.name].Transform.CacheIgnore
	case "batch":
		return b.p.Batch[e.name].CacheIgnore
	case "tasks":
		return b.p.Tasks[e.name].CacheIgnore
	}
	return nil
}

func digestJSON(v any) string {
	if ss, ok := v.([]string); ok && ss != nil { // commands, outputs
		b := make([]byte, 0, 64)
		b = append(b, '[')
		for i, s := range ss {
			if !plain(s) {
				b = nil
				break
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		}
		if b != nil {
			return digestBytes(append(b, ']'))
		}
	}
	data, err := json.Marshal(v) // maps marshal with sorted keys: canonical
	if err != nil {
		panic("graph: " + err.Error()) // plain data always marshals
	}
	return digestBytes(data)
}

func digestBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// topo orders the steps so each comes after its needs, keeping creation
// order among steps that are ready together (Kahn's algorithm), and
// normalises each step's needs (deduplicated, sorted).
func (b *builder) topo() []*schema.Step {
	index := map[string]int{}
	for i, s := range b.steps {
		index[s.Address] = i
	}
	indeg := make([]int, len(b.steps))
	down := make([][]int, len(b.steps))
	for i, s := range b.steps {
		seen := map[string]bool{}
		var needs []string
		for _, n := range s.Needs {
			if seen[n] || n == "" {
				continue
			}
			seen[n] = true
			j, ok := index[n]
			if !ok {
				b.errorf("dangling-ref", s.Element, "%s needs %s, which is not a step", s.Address, n)
				continue
			}
			needs = append(needs, n)
			indeg[i]++
			down[j] = append(down[j], i)
		}
		sort.Strings(needs)
		s.Needs = needs
	}
	ready := &intHeap{}
	for i := range b.steps {
		if indeg[i] == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]*schema.Step, 0, len(b.steps))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, b.steps[i])
		for _, j := range down[i] {
			indeg[j]--
			if indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	if len(out) != len(b.steps) {
		b.errorf("cycle", "", "the step graph has a cycle")
	}
	return out
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
