package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Tables are read in batches of rows: a reader goroutine fills batches and a
// consumer (the validator or the profiler) drains them, so parsing and
// checking use two cores. A batch copies the bytes of its cells into one
// buffer and notes where each ends: no pointers per cell, so filling it costs
// the garbage collector nothing (storing string headers did: write barriers,
// and every record kept alive until the batch was checked), and cells are
// checked as byte slices without allocating.

// ErrUnsupported marks a source kind or format the local data steps do not
// handle yet. Test for it with errors.Is.
var ErrUnsupported = errors.New("not supported by the local data steps yet")

// cellKind is the JSON type of a JSON Lines cell. CSV cells have no kind:
// they are text, and an empty cell is null.
type cellKind uint8

const (
	kindNull cellKind = iota
	kindString
	kindNumber
	kindBool
	kindOther // an object or an array
)

const (
	batchRows  = 256 // rows per batch
	numBatches = 4   // batches in flight between reader and consumer
	readBuffer = 1 << 16
)

// batch is a run of rows of equal width.
type batch struct {
	names []string // column names; len(names) is the width
	n     int      // rows in the batch
	// buf holds the n*width cells, row-major, each after one separator
	// byte: cell i is buf[ends[i-1]+1:ends[i]] (buf[1:ends[0]] for the
	// first).
	buf  []byte
	ends []int
	// kinds is nil for CSV; for JSON Lines it parallels ends.
	kinds []cellKind
	// lines holds the 1-based file line on which each row starts.
	lines []int64
	// fieldLines holds, for the rare CSV rows whose fields start on more
	// than one line, the line of every field.
	fieldLines map[int][]int64
}

func (b *batch) reset(names []string) {
	b.names = names
	b.n = 0
	b.buf = b.buf[:0]
	clear(b.fieldLines)
}

// cell returns the bytes of cell i (row-major), valid until b is reused.
func (b *batch) cell(i int) []byte {
	start := 1
	if i > 0 {
		start = b.ends[i-1] + 1
	}
	return b.buf[start:b.ends[i]]
}

// size makes room for batchRows rows of width w.
func (b *batch) size(w int, kinds bool) {
	if len(b.ends) < batchRows*w {
		b.ends = make([]int, batchRows*w)
	}
	if len(b.lines) < batchRows {
		b.lines = make([]int64, batchRows)
	}
	if !kinds {
		b.kinds = nil
	} else if len(b.kinds) < batchRows*w {
		b.kinds = make([]cellKind, batchRows*w)
	}
}

// line is the line on which cell (r, col) starts.
func (b *batch) line(r, col int) int64 {
	if fl, ok := b.fieldLines[r]; ok {
		return fl[col]
	}
	return b.lines[r]
}

// source is an open table.
type source interface {
	// columns returns the column names known so far (JSON Lines may find
	// more as it reads).
	columns() []string
	// next fills b with up to batchRows rows. It returns io.EOF once no
	// rows remain; rows put in b before an error are still valid.
	next(b *batch) error
	Close() error
}

// formatOf returns the format to read, defaulting to CSV.
func formatOf(format string) (string, error) {
	switch format {
	case "", "csv":
		return "csv", nil
	case "jsonl":
		return "jsonl", nil
	case "parquet":
		return "", fmt.Errorf("format %q is %w", format, ErrUnsupported)
	}
	return "", fmt.Errorf("unknown data format %q (want csv or jsonl)", format)
}

// open opens path in format. For JSON Lines, keys, when not nil, fixes the
// columns to read (other keys are skipped, missing ones are null); when nil
// every key becomes a column in order of first appearance.
func open(path, format string, keys []string) (source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, readBuffer)
	if format == "jsonl" {
		s := &jsonlSource{f: f, r: br, path: path, index: map[string]int{}}
		if keys != nil {
			s.fixed = true
			for _, k := range keys {
				s.add(k)
			}
		}
		return s, nil
	}
	s := &csvSource{f: f, path: path, sc: &csvScanner{r: br}}
	buf, err := s.sc.record(nil)
	if err == io.EOF {
		f.Close()
		return nil, fmt.Errorf("read %s: no header row", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	start := 1
	for _, end := range s.sc.ends {
		s.names = append(s.names, string(buf[start:end]))
		start = end + 1
	}
	s.names[0] = strings.TrimPrefix(s.names[0], "\uFEFF")
	seen := make(map[string]int, len(s.names))
	for i, n := range s.names {
		if j, dup := seen[n]; dup {
			f.Close()
			return nil, fmt.Errorf("read %s: header names column %q twice (columns %d and %d)", path, n, j+1, i+1)
		}
		seen[n] = i
	}
	return s, nil
}

type csvSource struct {
	f     *os.File
	path  string
	sc    *csvScanner
	names []string
}

func (s *csvSource) columns() []string { return s.names }
func (s *csvSource) Close() error      { return s.f.Close() }

func (s *csvSource) next(b *batch) error {
	w := len(s.names)
	b.reset(s.names)
	b.size(w, false)
	// buf is local while filling: storing the slice in b after every
	// record would be a pointer write (a GC write barrier) per record.
	buf := b.buf
	defer func() { b.buf = buf }()
	for b.n < batchRows {
		var err error
		buf, err = s.sc.record(buf)
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", s.path, err)
		}
		copy(b.ends[b.n*w:(b.n+1)*w], s.sc.ends)
		b.lines[b.n] = int64(s.sc.recLine)
		if s.sc.multi {
			fl := make([]int64, w)
			for i, l := range s.sc.lines {
				fl[i] = int64(l)
			}
			if b.fieldLines == nil {
				b.fieldLines = map[int][]int64{}
			}
			b.fieldLines[b.n] = fl
		}
		b.n++
	}
	return nil
}

type jsonlSource struct {
	f     *os.File
	r     *bufio.Reader
	path  string
	line  int64
	fixed bool // columns are given; other keys are skipped
	names []string
	index map[string]int
	buf   []byte
	// pending is a parsed row that brought new columns and waits for the
	// next batch (a batch has one width).
	pending     []field
	pendingLine int64
	row         []field
	texts       []string // a row's cell texts in column order
}

type field struct {
	col  int
	kind cellKind
	text string
}

func (s *jsonlSource) columns() []string { return s.names }
func (s *jsonlSource) Close() error      { return s.f.Close() }

func (s *jsonlSource) add(k string) int {
	if i, ok := s.index[k]; ok {
		return i
	}
	s.index[k] = len(s.names)
	s.names = append(s.names, k)
	return len(s.names) - 1
}

func (s *jsonlSource) next(b *batch) error {
	b.reset(s.names)
	w := len(s.names)
	b.size(w, true)
	put := func(row []field, line int64) {
		texts := s.texts[:0]
		for range w {
			texts = append(texts, "")
		}
		kinds := b.kinds[b.n*w : (b.n+1)*w]
		clear(kinds) // kindNull
		for _, f := range row {
			texts[f.col] = f.text
			kinds[f.col] = f.kind
		}
		ends := b.ends[b.n*w : (b.n+1)*w]
		for i, t := range texts {
			b.buf = append(b.buf, 0)
			b.buf = append(b.buf, t...)
			ends[i] = len(b.buf)
		}
		s.texts = texts
		b.lines[b.n] = line
		b.n++
	}
	if s.pending != nil {
		put(s.pending, s.pendingLine)
		s.pending = nil
	}
	for b.n < batchRows {
		line, err := s.readLine()
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", s.path, err)
		}
		s.line++
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		before := len(s.names)
		row, err := s.parse(line)
		if err != nil {
			return fmt.Errorf("read %s: line %d: %w", s.path, s.line, err)
		}
		if len(s.names) != before {
			// New columns: this row starts the next, wider batch.
			s.pending = append([]field(nil), row...)
			s.pendingLine = s.line
			if b.n > 0 {
				return nil
			}
			b.reset(s.names)
			w = len(s.names)
			b.size(w, true)
			put(s.pending, s.pendingLine)
			s.pending = nil
			continue
		}
		put(row, s.line)
	}
	return nil
}

// readLine returns the next line without its terminator; the slice is valid
// until the next call.
func (s *jsonlSource) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.buf = append(s.buf[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			s.buf = append(s.buf, line...)
		}
		line = s.buf
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// parse decodes one JSON object, keeping its keys in order.
func (s *jsonlSource) parse(line []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	s.row = s.row[:0]
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		col, ok := s.index[key]
		if !ok {
			if s.fixed {
				continue
			}
			col = s.add(key)
		}
		f := field{col: col}
		switch raw[0] {
		case 'n':
			f.kind = kindNull
		case '"':
			f.kind = kindString
			if err := json.Unmarshal(raw, &f.text); err != nil {
				return nil, err
			}
		case 't', 'f':
			f.kind, f.text = kindBool, string(raw)
		case '{', '[':
			f.kind, f.text = kindOther, string(raw)
		default:
			f.kind, f.text = kindNumber, string(raw)
		}
		s.row = append(s.row, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return s.row, nil
}

// pump reads src on its own goroutine and calls fn with each batch, in file
// order, on the calling goroutine. fn must not keep b. It returns the first
// read error, or the context's error when ctx ends first.
func pump(ctx context.Context, src source, fn func(b *batch)) error {
	if runtime.GOMAXPROCS(0) < 2 {
		// One core: a second goroutine would only add hand-overs.
		b := new(batch)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := src.next(b)
			if b.n > 0 {
				fn(b)
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *batch, numBatches)
	full := make(chan *batch, numBatches)
	for range numBatches {
		free <- new(batch)
	}
	errc := make(chan error, 1)
	go func() {
		defer close(full)
		for {
			var b *batch
			select {
			case b = <-free:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
			err := src.next(b)
			if b.n > 0 {
				full <- b // never blocks: full holds every batch
			}
			if err != nil {
				if err != io.EOF {
					errc <- err
				}
				return
			}
		}
	}()
	for b := range full {
		if ctx.Err() == nil {
			fn(b)
		}
		free <- b
	}
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// Cell syntax. CSV cells are text; these decide what a text is.

// isBool reports whether s spells a boolean: true or false in lower, title
// or upper case (the spellings of common CSV writers).
func isBool(s []byte) bool {
	switch string(s) {
	case "true", "false", "True", "False", "TRUE", "FALSE":
		return true
	}
	return false
}

// numSyntax is what scanNumber found a text to be.
type numSyntax uint8

const (
	notNumber numSyntax = iota
	intSyntax           // an optionally signed run of digits
	decSyntax           // a number with a fraction or an exponent
)

// pow10 holds the powers of ten float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// scanNumber decides in one pass whether s is an int (an optionally signed
// run of decimal digits), a decimal number (an optional sign, digits with an
// optional fraction, at least one digit in all, and an optional exponent;
// no hexadecimal, underscores, Inf or NaN) or neither, and when want is set
// also returns its value,
// correctly rounded: a mantissa below 2^53 scaled by an exact power of ten
// is one correctly rounded operation (Clinger's fast path); anything else
// goes to strconv.ParseFloat. Values beyond float64's range become ±Inf and
// still compare correctly with bounds.
func scanNumber(s []byte, want bool) (float64, numSyntax) {
	i, n := 0, len(s)
	neg := false
	if n > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		i = 1
	}
	// Accumulate every digit; more than 18 would overflow mant, and such
	// numbers go to strconv below.
	var mant int64
	start := i
	for i < n && s[i]-'0' <= 9 {
		mant = mant*10 + int64(s[i]-'0')
		i++
	}
	digits, frac := i-start, 0
	syn := intSyntax
	if i < n && s[i] == '.' {
		syn = decSyntax
		i++
		fstart := i
		for i < n && s[i]-'0' <= 9 {
			mant = mant*10 + int64(s[i]-'0')
			i++
		}
		frac = i - fstart
		digits += frac
	}
	if digits == 0 {
		return 0, notNumber
	}
	exp := 0
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		syn = decSyntax
		i++
		eneg := false
		if i < n && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		estart := i
		for i < n && s[i]-'0' <= 9 {
			if exp < 10000 {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == estart {
			return 0, notNumber
		}
		if eneg {
			exp = -exp
		}
	}
	if i != n {
		return 0, notNumber
	}
	if !want {
		return 0, syn
	}
	exp -= frac
	if digits <= 15 && exp >= -22 && exp <= 22 { // 15 digits: mant < 2^53
		x := float64(mant)
		if exp < 0 {
			x /= pow10[-exp]
		} else {
			x *= pow10[exp]
		}
		if neg {
			x = -x
		}
		return x, syn
	}
	x, _ := strconv.ParseFloat(string(s), 64)
	return x, syn
}
