// Package local is the embedded default backend: it runs each step as a
// subprocess on this machine under the step contract (DESIGN section 5), in a
// work folder of its own, with a clean environment holding only the
// declared variables. It implements runtime/backend's interface and never
// imports the compiler, CUE or OPA.
package local
