package schema

import _ "embed"

// CUE is the schema's source (weir.cue), embedded: the source of truth the
// loader unifies every spec with.
//
//go:embed weir.cue
var CUE []byte
