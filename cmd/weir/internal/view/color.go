// Package view renders Weir's results (diagnostics, plans, graphs, policy
// findings) for people and tools. Libraries never print: the CLI hands their
// values to a view.
package view

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// Style colours text for a terminal; the zero Style prints plain text.
type Style struct{ on bool }

// StyleFor colours output for w only when it is a terminal and NO_COLOR is
// not set (https://no-color.org).
func StyleFor(w io.Writer) Style {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return Style{}
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		return Style{on: true}
	}
	return Style{}
}

func (s Style) wrap(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s Style) Bold(t string) string   { return s.wrap("1", t) }
func (s Style) Dim(t string) string    { return s.wrap("2", t) }
func (s Style) Red(t string) string    { return s.wrap("31", t) }
func (s Style) Green(t string) string  { return s.wrap("32", t) }
func (s Style) Yellow(t string) string { return s.wrap("33", t) }
func (s Style) Cyan(t string) string   { return s.wrap("36", t) }
