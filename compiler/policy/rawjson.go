package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// rawEncoder converts a json.RawMessage (a step's config) by parsing its
// text straight into terms, with the conversion's shared strings: the
// encoding/json decode into any and its conversion that marshalerEncoder
// makes cost a third of the input at 10,000 steps. Text it does not take
// (invalid JSON, which marshalerEncoder reports) goes the slow way.
func rawEncoder(c *conversion, v reflect.Value) (*ast.Term, error) {
	b := v.Bytes()
	if b == nil {
		return ast.NullTerm(), nil
	}
	p := rawParser{c: c, b: b}
	p.space()
	t, err := p.value(0)
	if p.space(); err == nil && p.i == len(b) {
		return t, nil
	}
	return marshalerEncoder(c, v)
}

var errRaw = errors.New("not the JSON rawParser takes")

// rawParser is a recursive-descent JSON parser building OPA terms, with
// encoding/json's results: numbers as json.Number, duplicate keys the last
// one winning, strings with escapes or invalid UTF-8 decoded by
// encoding/json itself.
type rawParser struct {
	c *conversion
	b []byte
	i int
}

// maxRawDepth bounds nesting (encoding/json allows 10,000).
const maxRawDepth = 1000

func (p *rawParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *rawParser) value(depth int) (*ast.Term, error) {
	if p.i >= len(p.b) || depth > maxRawDepth {
		return nil, errRaw
	}
	switch ch := p.b[p.i]; {
	case ch == '{':
		p.i++
		mark := len(p.c.pairs)
		defer func() { p.c.pairs = p.c.pairs[:mark] }()
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return p.c.term(ast.NewObject()), nil
		}
		for {
			p.space()
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, errRaw
			}
			p.i++
			p.space()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.c.pairs = append(p.c.pairs, [2]*ast.Term{k, v})
			p.space()
			if p.i >= len(p.b) {
				return nil, errRaw
			}
			if p.b[p.i] == '}' {
				p.i++
				return p.c.term(object(p.c.pairs[mark:])), nil
			}
			if p.b[p.i] != ',' {
				return nil, errRaw
			}
			p.i++
		}
	case ch == '[':
		p.i++
		var terms []*ast.Term
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return ast.ArrayTerm(), nil
		}
		for {
			p.space()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			terms = append(terms, v)
			p.space()
			if p.i >= len(p.b) {
				return nil, errRaw
			}
			if p.b[p.i] == ']' {
				p.i++
				return p.c.term(ast.NewArray(terms...)), nil
			}
			if p.b[p.i] != ',' {
				return nil, errRaw
			}
			p.i++
		}
	case ch == '"':
		return p.str()
	case ch == 't':
		return p.literal("true", ast.InternedTerm(true))
	case ch == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case ch == 'n':
		return p.literal("null", ast.NullTerm())
	case ch == '-' || ch >= '0' && ch <= '9':
		return p.number()
	}
	return nil, errRaw
}

func (p *rawParser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, errRaw
	}
	p.i += len(word)
	return t, nil
}

// str reads a string; the common one (no escapes, ASCII or valid UTF-8)
// without a copy beyond the Go string.
func (p *rawParser) str() (*ast.Term, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, errRaw
	}
	start := p.i
	p.i++
	plain, ascii := true, true
	for ; p.i < len(p.b); p.i++ {
		switch ch := p.b[p.i]; {
		case ch == '"':
			p.i++
			body := p.b[start+1 : p.i-1]
			if plain && (ascii || utf8.Valid(body)) {
				return p.c.str(string(body)), nil
			}
			if !plain && ascii {
				if s, ok := unescape(body); ok {
					return p.c.str(s), nil
				}
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return nil, err
			}
			return p.c.str(s), nil
		case ch == '\\':
			plain = false
			p.i++ // the escaped character cannot end the string
		case ch < 0x20:
			return nil, errRaw
		case ch >= 0x80:
			ascii = false
		}
	}
	return nil, errRaw
}

// number reads a number by JSON's grammar, as json.Number.
func (p *rawParser) number() (*ast.Term, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, errRaw
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, errRaw
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, errRaw
		}
	}
	v, err := ast.InterfaceToValue(json.Number(p.b[start:p.i]))
	if err != nil {
		return nil, err
	}
	return p.c.term(v), nil
}

// unescape decodes the escapes of a JSON string's ASCII body but \u, which
// it leaves to encoding/json (surrogate pairs, invalid code points).
func unescape(body []byte) (string, bool) {
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		ch := body[i]
		if ch != '\\' {
			out = append(out, ch)
			continue
		}
		i++
		if i == len(body) {
			return "", false
		}
		switch body[i] {
		case '"', '\\', '/':
			out = append(out, body[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			return "", false
		}
	}
	return string(out), true
}

// object makes an object of pairs, the last of equal keys winning as in
// encoding/json.
func object(pairs [][2]*ast.Term) ast.Object {
	if len(pairs) > 16 { // past a few keys, a look-up per key
		obj := ast.NewObjectWithCapacity(len(pairs))
		for _, kv := range pairs {
			obj.Insert(kv[0], kv[1])
		}
		return obj
	}
	for i := 1; i < len(pairs); i++ {
		for j := range i {
			if pairs[i][0].Value.Compare(pairs[j][0].Value) == 0 {
				obj := ast.NewObjectWithCapacity(len(pairs))
				for _, kv := range pairs {
					obj.Insert(kv[0], kv[1])
				}
				return obj
			}
		}
	}
	return ast.NewObject(pairs...)
}
