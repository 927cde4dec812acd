package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
)

// csvScanner reads CSV records the way encoding/csv.Reader does with its
// defaults (comma ',', no comments, strict quotes, every record as wide as
// the first), to the same records, the same field lines (FieldPos) and the
// same *csv.ParseError values, but appends each record's fields straight
// into a batch buffer instead of allocating a string per record. A line
// without a quote, the common case, is copied once and split at its
// commas; lines with quotes take the state machine of encoding/csv,
// transcribed. FuzzCSVScanner holds the two readers together.
//
// That state machine follows Go's encoding/csv/reader.go, Copyright 2011
// The Go Authors, used under the BSD-style license of the Go distribution
// (the LICENSE file of the Go source tree).
type csvScanner struct {
	r       *bufio.Reader
	raw     []byte // a line longer than r's buffer
	numLine int
	width   int // fields per record, set by the first record

	// Of the last record:
	recLine int   // the line it starts on
	ends    []int // where each field ends in the buffer
	lines   []int // the line each field starts on, when multi
	multi   bool  // its fields start on more than one line
}

// readLine is encoding/csv's: the next line with "\r\n" normalised to "\n"
// and a final "\r" before EOF dropped.
func (s *csvScanner) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.raw = append(s.raw[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			s.raw = append(s.raw, line...)
		}
		line = s.raw
	}
	readSize := len(line)
	if readSize > 0 && err == io.EOF {
		err = nil
		if line[readSize-1] == '\r' {
			line = line[:readSize-1]
		}
	}
	s.numLine++
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, err
}

func lengthNL(b []byte) int {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return 1
	}
	return 0
}

// record appends the next record to buf, each field preceded by one
// separator byte, and notes in s.ends where each field ends. It returns
// io.EOF when no record remains; on a *csv.ParseError the record is lost.
func (s *csvScanner) record(buf []byte) ([]byte, error) {
	s.ends = s.ends[:0]
	s.multi = false
	var line []byte
	var errRead error
	for errRead == nil {
		line, errRead = s.readLine()
		if errRead == nil && len(line) == lengthNL(line) {
			line = nil
			continue // skip empty lines
		}
		break
	}
	if errRead == io.EOF {
		return buf, io.EOF
	}
	s.recLine = s.numLine

	var err error
	if bytes.IndexByte(line, '"') < 0 {
		// No quotes: the fields are the line's text between commas.
		buf = append(buf, ',')
		off := len(buf)
		buf = append(buf, line[:len(line)-lengthNL(line)]...)
		for {
			i := bytes.IndexByte(buf[off:], ',')
			if i < 0 {
				break
			}
			s.ends = append(s.ends, off+i)
			off += i + 1
		}
		s.ends = append(s.ends, len(buf))
	} else {
		buf, errRead, err = s.quoted(buf, line, errRead)
	}
	if err == nil {
		err = errRead
	}
	if err != nil {
		return buf, err
	}
	if s.width == 0 {
		s.width = len(s.ends)
	} else if len(s.ends) != s.width {
		return buf, &csv.ParseError{StartLine: s.recLine, Line: s.recLine, Column: 1, Err: csv.ErrFieldCount}
	}
	return buf, nil
}

// quoted parses a record whose first line holds a quote: encoding/csv's
// readRecord with LazyQuotes and TrimLeadingSpace off.
func (s *csvScanner) quoted(buf, line []byte, errRead error) ([]byte, error, error) {
	type position struct{ line, col int }
	s.lines = s.lines[:0]
	pos := position{line: s.numLine, col: 1}
	var err error
parseField:
	for {
		if len(line) == 0 || line[0] != '"' {
			// Non-quoted field.
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = field[:i]
			} else {
				field = field[:len(field)-lengthNL(field)]
			}
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				err = &csv.ParseError{StartLine: s.recLine, Line: s.numLine, Column: pos.col + j, Err: csv.ErrBareQuote}
				break parseField
			}
			buf = append(buf, ',')
			buf = append(buf, field...)
			s.ends = append(s.ends, len(buf))
			s.lines = append(s.lines, pos.line)
			if i >= 0 {
				line = line[i+1:]
				pos.col += i + 1
				continue parseField
			}
			break parseField
		}
		// Quoted field.
		fieldPos := pos
		line = line[1:]
		pos.col++
		buf = append(buf, ',')
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				buf = append(buf, line[:i]...)
				line = line[i+1:]
				pos.col += i + 1
				switch {
				case len(line) > 0 && line[0] == '"': // "" is a quote
					buf = append(buf, '"')
					line = line[1:]
					pos.col++
				case len(line) > 0 && line[0] == ',': // ", ends the field
					line = line[1:]
					pos.col++
					s.ends = append(s.ends, len(buf))
					s.lines = append(s.lines, fieldPos.line)
					continue parseField
				case lengthNL(line) == len(line): // "\n ends the record
					s.ends = append(s.ends, len(buf))
					s.lines = append(s.lines, fieldPos.line)
					break parseField
				default:
					err = &csv.ParseError{StartLine: s.recLine, Line: s.numLine, Column: pos.col - 1, Err: csv.ErrQuote}
					break parseField
				}
			case len(line) > 0: // the field goes on on the next line
				buf = append(buf, line...)
				if errRead != nil {
					break parseField
				}
				pos.col += len(line)
				line, errRead = s.readLine()
				if len(line) > 0 {
					pos.line++
					pos.col = 1
				}
				if errRead == io.EOF {
					errRead = nil
				}
			default: // end of file inside quotes
				if errRead == nil {
					err = &csv.ParseError{StartLine: s.recLine, Line: pos.line, Column: pos.col, Err: csv.ErrQuote}
					break parseField
				}
				s.ends = append(s.ends, len(buf))
				s.lines = append(s.lines, fieldPos.line)
				break parseField
			}
		}
	}
	for _, l := range s.lines {
		if l != s.recLine {
			s.multi = true
		}
	}
	return buf, errRead, err
}
