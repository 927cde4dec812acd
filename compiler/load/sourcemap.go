package load

import (
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"

	"weir.dev/weir/internal/diag"
	"weir.dev/weir/schema"
)

// sourceMap records where each field of the spec is written, from the
// syntax: the first place a path is written wins (files in name order). Paths
// built by comprehensions or references are not recorded; lookups fall back
// to the nearest recorded ancestor.
func sourceMap(dir string, files []*ast.File) schema.SourceMap {
	b := &smBuilder{c: &converter{dir: dir}, sm: schema.SourceMap{}}
	for _, f := range files {
		b.walkDecls("", f.Decls)
	}
	return b.sm
}

type smBuilder struct {
	c     *converter
	sm    schema.SourceMap
	names map[string]string // file name in positions -> in ranges
}

// add records path at p unless it is recorded already: a range as
// converter.rng makes it, with the file name converted once per file.
func (b *smBuilder) add(path string, p token.Pos) {
	if _, seen := b.sm[path]; seen || !p.IsValid() {
		return
	}
	pos := p.Position()
	name, ok := b.names[pos.Filename]
	if !ok {
		name = b.c.rng(p).Filename
		if b.names == nil {
			b.names = map[string]string{}
		}
		b.names[pos.Filename] = name
	}
	at := diag.Pos{Line: pos.Line, Column: pos.Column, Offset: pos.Offset}
	b.sm[path] = diag.Range{Filename: name, Start: at, End: at}
}

func (b *smBuilder) walkDecls(prefix string, decls []ast.Decl) {
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
			b.add(path, d.Pos())
			b.walkExpr(path, d.Value)
		case *ast.EmbedDecl:
			b.walkExpr(prefix, d.Expr)
		}
	}
}

func (b *smBuilder) walkExpr(path string, e ast.Expr) {
	switch e := e.(type) {
	case *ast.StructLit:
		b.walkDecls(path, e.Elts)
	case *ast.ListLit:
		for i, el := range e.Elts {
			p := path + "[" + strconv.Itoa(i) + "]"
			b.add(p, el.Pos())
			b.walkExpr(p, el)
		}
	case *ast.BinaryExpr:
		b.walkExpr(path, e.X)
		b.walkExpr(path, e.Y)
	case *ast.ParenExpr:
		b.walkExpr(path, e.X)
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
