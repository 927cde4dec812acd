package data

import (
	"encoding/binary"
	"regexp"
	"regexp/syntax"
	"slices"
)

// matcher answers (*regexp.Regexp).Match faster on ASCII text, with a
// DFA built lazily from the compiled program, one state per set of program
// counters the NFA can be in. A match-or-not answer does not depend on
// leftmost-first preference, so the DFA and regexp always agree
// (FuzzMatcher holds them together).
//
// It falls back to regexp for text with non-ASCII bytes, for empty text,
// for programs with line or word assertions ((?m)^, \b), and for good once
// the DFA would exceed maxStates. A matcher is not safe for concurrent use;
// each Validate call compiles its own.
type matcher struct {
	re   *regexp.Regexp
	prog *syntax.Prog
	dfa  bool

	start  int32 // state at position 0
	states []*dfaState
	index  map[string]int32

	// scratch for closures
	stack []uint32
	seen  []bool
	set   []uint32
}

const maxStates = 512

const (
	unknown int32 = -1
)

type dfaState struct {
	pcs   []uint32 // sorted: rune instructions and pending end-of-text assertions
	match bool     // a match ends here
	dead  bool     // no match can follow (anchored program, no threads)
	atEnd int8     // -1 unknown, 0 no match at end of text, 1 match
	next  [128]int32
}

func newMatcher(re *regexp.Regexp) *matcher {
	m := &matcher{re: re}
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return m
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return m
	}
	for _, in := range prog.Inst {
		if in.Op == syntax.InstEmptyWidth && syntax.EmptyOp(in.Arg)&^(syntax.EmptyBeginText|syntax.EmptyEndText) != 0 {
			return m
		}
	}
	m.prog = prog
	m.seen = make([]bool, len(prog.Inst))
	m.index = map[string]int32{}
	m.closure([]uint32{uint32(prog.Start)}, syntax.EmptyBeginText)
	m.start = m.intern()
	m.dfa = m.start >= 0
	return m
}

// Match reports whether s contains a match of the regular expression.
func (m *matcher) Match(s []byte) bool {
	if !m.dfa || len(s) == 0 {
		return m.re.Match(s)
	}
	st := m.states[m.start]
	if st.match {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return m.re.Match(s)
		}
		nx := st.next[c]
		if nx == unknown {
			nx = m.step(st, c)
			if nx < 0 {
				return m.re.Match(s)
			}
			st.next[c] = nx
		}
		st = m.states[nx]
		if st.match {
			return true
		}
		if st.dead {
			return false
		}
	}
	if st.atEnd < 0 {
		var pending []uint32
		for _, pc := range st.pcs {
			if m.prog.Inst[pc].Op == syntax.InstEmptyWidth {
				pending = append(pending, pc)
			}
		}
		m.set = m.set[:0]
		if m.closure(pending, syntax.EmptyEndText) {
			st.atEnd = 1
		} else {
			st.atEnd = 0
		}
	}
	return st.atEnd == 1
}

// step computes the state after st reads c, or -1 when the DFA is full.
func (m *matcher) step(st *dfaState, c byte) int32 {
	var seeds []uint32
	r := rune(c)
	for _, pc := range st.pcs {
		in := &m.prog.Inst[pc]
		var ok bool
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1:
			ok = in.MatchRune(r)
		case syntax.InstRuneAny:
			ok = true
		case syntax.InstRuneAnyNotNL:
			ok = r != '\n'
		}
		if ok {
			seeds = append(seeds, in.Out)
		}
	}
	if m.prog.StartCond()&syntax.EmptyBeginText == 0 {
		// Unanchored: a match may also start at the next position.
		seeds = append(seeds, uint32(m.prog.Start))
	}
	m.set = m.set[:0]
	m.closure(seeds, 0)
	return m.intern()
}

// closure adds to m.set every instruction reachable from seeds without
// reading input when the empty-width conditions in flags hold, keeping
// rune instructions, Match, and assertions that end of text could still
// satisfy. It reports whether Match was reached.
func (m *matcher) closure(seeds []uint32, flags syntax.EmptyOp) bool {
	clear(m.seen)
	matched := false
	m.stack = append(m.stack[:0], seeds...)
	for len(m.stack) > 0 {
		pc := m.stack[len(m.stack)-1]
		m.stack = m.stack[:len(m.stack)-1]
		if m.seen[pc] {
			continue
		}
		m.seen[pc] = true
		in := &m.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			m.stack = append(m.stack, in.Arg, in.Out)
		case syntax.InstCapture, syntax.InstNop:
			m.stack = append(m.stack, in.Out)
		case syntax.InstEmptyWidth:
			need := syntax.EmptyOp(in.Arg)
			switch {
			case need&^flags == 0:
				m.stack = append(m.stack, in.Out)
			case need&^(flags|syntax.EmptyEndText) == 0:
				m.set = append(m.set, pc)
			}
		case syntax.InstMatch:
			matched = true
			m.set = append(m.set, pc)
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			m.set = append(m.set, pc)
		}
	}
	return matched
}

// intern returns the state for m.set, making it if new; -1 when the DFA
// is full.
func (m *matcher) intern() int32 {
	slices.Sort(m.set)
	key := make([]byte, 4*len(m.set))
	match := false
	for i, pc := range m.set {
		binary.LittleEndian.PutUint32(key[4*i:], pc)
		if m.prog.Inst[pc].Op == syntax.InstMatch {
			match = true
		}
	}
	if id, ok := m.index[string(key)]; ok {
		return id
	}
	if len(m.states) == maxStates {
		m.dfa = false
		return -1
	}
	st := &dfaState{pcs: slices.Clone(m.set), match: match, atEnd: -1}
	st.dead = len(st.pcs) == 0 && m.prog.StartCond()&syntax.EmptyBeginText != 0
	for i := range st.next {
		st.next[i] = unknown
	}
	id := int32(len(m.states))
	m.states = append(m.states, st)
	m.index[string(key)] = id
	return id
}
