package policy

import (
	"bytes"
	"crypto/sha256"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"weir.dev/weir/internal/diag"
)

// compiledBundle is the modules of a bundle parsed and compiled, the
// larger part of New (about 30 ms for the built-in bundle). done is
// closed once they are; compiler is nil when they could not be.
type compiledBundle struct {
	done     chan struct{}
	modules  map[string]*ast.Module
	compiler *ast.Compiler
}

// compiledCache holds the last compiledCacheSize compiled bundles by the
// digest of their modules' names and texts, so that New after Warm, or a
// second engine over the same policies (weir review's base and head), does
// not parse and compile them again. The compiler is only read once
// compiled, and engines may share it.
var compiledCache struct {
	sync.Mutex
	byKey map[[sha256.Size]byte]*compiledBundle
	order [][sha256.Size]byte
}

const compiledCacheSize = 4

// Warm parses and compiles, on another goroutine, the policy modules opts
// loads, so that a later New with the same modules (same file names and
// texts; data, enforcement and waivers may differ) finds them compiled,
// or waits for them rather than compiling them again. Problems are left
// for New to report.
func Warm(opts Options) {
	go compiled(opts)
}

// compiled loads opts' bundle (tests left out) with its modules parsed and
// compiled, from compiledCache when the modules read are those of an
// entry. The diagnostics are those of load and of compiling the modules;
// the compiler is nil when they hold an error.
func compiled(opts Options) (*bundle, *ast.Compiler, diag.Diagnostics) {
	b, ds := loadSources(opts, false, false)
	if ds.HasErrors() {
		return compile(opts) // reports every problem, in order
	}
	var key [sha256.Size]byte
	b.sum.Sum(key[:0])
	compiledCache.Lock()
	cb, hit := compiledCache.byKey[key]
	if !hit {
		cb = &compiledBundle{done: make(chan struct{})}
		if compiledCache.byKey == nil {
			compiledCache.byKey = map[[sha256.Size]byte]*compiledBundle{}
		}
		compiledCache.byKey[key] = cb
		compiledCache.order = append(compiledCache.order, key)
		if len(compiledCache.order) > compiledCacheSize {
			delete(compiledCache.byKey, compiledCache.order[0])
			compiledCache.order = compiledCache.order[1:]
		}
	}
	compiledCache.Unlock()
	if hit {
		<-cb.done
		if cb.compiler == nil {
			return compile(opts)
		}
		b.modules = cb.modules
		for name := range b.files {
			if cb.modules[name] == nil { // an empty file
				delete(b.files, name)
			}
		}
		return b, cb.compiler, ds
	}
	full, c, ds := compile(opts)
	// The files may have changed since they were digested: only what
	// was compiled from the digested texts is kept.
	if c != nil && bytes.Equal(full.sum.Sum(nil), key[:]) {
		cb.modules, cb.compiler = full.modules, c
	}
	close(cb.done)
	return full, c, ds
}

// compile loads opts' bundle (tests left out) and compiles its modules.
func compile(opts Options) (*bundle, *ast.Compiler, diag.Diagnostics) {
	b, ds := load(opts, false)
	if ds.HasErrors() {
		return b, nil, ds
	}
	c := newCompiler(false)
	if c.Compile(b.modules); c.Failed() {
		return b, nil, append(ds, regoErrors("policy-compile", c.Errors, "")...)
	}
	return b, c, ds
}
