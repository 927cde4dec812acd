package load

import (
	"strconv"

	"cuelang.org/go/cue/ast"

	"weir.dev/weir/schema"
)

// sourceMap records where each field of the spec is written, from the
// syntax: the first place a path is written wins (files in name order). Paths
// built by comprehensions or references are not recorded; lookups fall back
// to the nearest recorded ancestor.
func sourceMap(dir string, files []*ast.File) schema.SourceMap {
	c := &converter{dir: dir}
	sm := schema.SourceMap{}
	for _, f := range files {
		walkDecls(c, sm, "", f.Decls)
	}
	return sm
}

func walkDecls(c *converter, sm schema.SourceMap, prefix string, decls []ast.Decl) {
	for _, d := range decls {
		switch d := d.(type) {
		case *ast.Field:
			name, ok := labelName(d.Label)
			if !ok {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			if _, seen := sm[path]; !seen {
				if r := c.rng(d.Pos()); r != nil {
					sm[path] = *r
				}
			}
			walkExpr(c, sm, path, d.Value)
		case *ast.EmbedDecl:
			walkExpr(c, sm, prefix, d.Expr)
		}
	}
}

func walkExpr(c *converter, sm schema.SourceMap, path string, e ast.Expr) {
	switch e := e.(type) {
	case *ast.StructLit:
		walkDecls(c, sm, path, e.Elts)
	case *ast.ListLit:
		for i, el := range e.Elts {
			p := path + "[" + strconv.Itoa(i) + "]"
			if _, seen := sm[p]; !seen {
				if r := c.rng(el.Pos()); r != nil {
					sm[p] = *r
				}
			}
			walkExpr(c, sm, p, el)
		}
	case *ast.BinaryExpr:
		walkExpr(c, sm, path, e.X)
		walkExpr(c, sm, path, e.Y)
	case *ast.ParenExpr:
		walkExpr(c, sm, path, e.X)
	}
}

// labelName is the name of a regular field label; definitions, hidden
// fields, and pattern labels are not part of the spec's data.
func labelName(l ast.Label) (string, bool) {
	switch l := l.(type) {
	case *ast.Ident:
		if len(l.Name) > 0 && (l.Name[0] == '#' || l.Name[0] == '_') {
			return "", false
		}
		return l.Name, true
	case *ast.BasicLit:
		if s, err := strconv.Unquote(l.Value); err == nil {
			return s, true
		}
	}
	return "", false
}
