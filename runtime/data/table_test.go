package data

import (
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

var (
	intRE    = regexp.MustCompile(`^[+-]?[0-9]+$`)
	numberRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
)

func TestScanNumber(t *testing.T) {
	for in, want := range map[string]numSyntax{
		"0": intSyntax, "-12": intSyntax, "+7": intSyntax, "007": intSyntax,
		"1.5": decSyntax, "-0.25": decSyntax, ".5": decSyntax, "5.": decSyntax, "1e3": decSyntax, "2.5E-3": decSyntax,
		"": notNumber, "-": notNumber, ".": notNumber, "e5": notNumber, "1e": notNumber, "1e+": notNumber,
		"0x10": notNumber, "1_000": notNumber, "Inf": notNumber, "NaN": notNumber, " 1": notNumber, "1 ": notNumber, "1.2.3": notNumber,
	} {
		x, got := scanNumber([]byte(in), true)
		assert.Equal(t, want, got, "%q", in)
		if got != notNumber {
			f, _ := strconv.ParseFloat(in, 64)
			assert.Equal(t, f, x, "%q", in)
		}
	}
	x, _ := scanNumber([]byte("1e400"), true)
	assert.True(t, math.IsInf(x, 1))
}

// FuzzScanNumber holds scanNumber to the syntax it documents and to
// strconv's correctly rounded values.
func FuzzScanNumber(f *testing.F) {
	for _, s := range []string{"0", "-1.5", "123456789012345678901234567890", "0.1", "9007199254740993", "1e22", "1e23", "4.9e-324", ".5e-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, syn := scanNumber([]byte(s), true)
		switch {
		case intRE.MatchString(s):
			if syn != intSyntax {
				t.Fatalf("%q: got %v, want an int", s, syn)
			}
		case numberRE.MatchString(s):
			if syn != decSyntax {
				t.Fatalf("%q: got %v, want a number", s, syn)
			}
		default:
			if syn != notNumber {
				t.Fatalf("%q: got %v, want not a number", s, syn)
			}
			return
		}
		want, _ := strconv.ParseFloat(s, 64)
		if x != want && !(math.IsNaN(x) && math.IsNaN(want)) {
			t.Fatalf("%q: got %v, want %v", s, x, want)
		}
	})
}
