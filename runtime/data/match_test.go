package data

import (
	"regexp"
	"testing"
)

var matchPatterns = []string{
	`^C[0-9]{7}$`, `[a-z]+`, `^$`, `$`, `^`, `a*`, `^a*$`, `(?i)^abc`, `x|^y`, `^(ab|a)b$`,
	`[^,]+,`, `.`, `^.$`, `a.c`, `\d{3}-\d{4}`, `^\s*$`, `colou?r`, `(a|b)*abb$`, `^[A-Z]{2}$`,
	`\bword\b`, `(?m)^x$`, `^a{2,4}$`, `z$`, `^(?:[a-z]+\.)+[a-z]{2,}$`, `(?s)a.b`, `a\nb`, `[[:upper:]]`,
	`^\x{e9}`, `é`,
}

var matchInputs = []string{
	"", "C0000001", "C000001", "c0000001", "C00000012", "abc", "ABC", "aBc", "x", "y", "yx", "xy",
	"ab", "abb", "aab", "a,b", ",", "a", "aa", "aaaa", "aaaaa", "a\nb", "axc", "555-1234", "  ", " x ",
	"color", "colour", "babb", "GB", "G", "word", "a word here", "x\nx", "z", "zz", "zy", "www.example.com",
	"example", "é", "café", "Abc", "a\x00b", "\x7f",
}

// TestMatcherAgreesWithRegexp holds the DFA to regexp's answer.
func TestMatcherAgreesWithRegexp(t *testing.T) {
	for _, p := range matchPatterns {
		re := regexp.MustCompile(p)
		m := newMatcher(re)
		for range 2 { // the second round uses the built states
			for _, in := range matchInputs {
				if got, want := m.Match([]byte(in)), re.MatchString(in); got != want {
					t.Errorf("pattern %q on %q: matcher says %v, regexp %v", p, in, got, want)
				}
			}
		}
	}
	if !newMatcher(regexp.MustCompile(`^C[0-9]{7}$`)).dfa {
		t.Error("a plain anchored pattern should use the DFA")
	}
	if newMatcher(regexp.MustCompile(`\bx`)).dfa {
		t.Error("word boundaries should fall back to regexp")
	}
}

func FuzzMatcher(f *testing.F) {
	for i, p := range matchPatterns {
		f.Add(p, matchInputs[i%len(matchInputs)])
	}
	f.Fuzz(func(t *testing.T, pattern, input string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		m := newMatcher(re)
		for range 2 {
			if got, want := m.Match([]byte(input)), re.MatchString(input); got != want {
				t.Fatalf("pattern %q on %q: matcher says %v, regexp %v", pattern, input, got, want)
			}
		}
	})
}
