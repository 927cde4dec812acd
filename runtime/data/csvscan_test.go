package data

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"
)

// readAll reads data with encoding/csv: each record's fields and the line
// each field starts on, then the error that ended the reading ("EOF" at
// the end).
func readAllStd(data string) (recs [][]string, lines [][]int, end string) {
	r := csv.NewReader(strings.NewReader(data))
	for {
		rec, err := r.Read()
		if err != nil {
			return recs, lines, err.Error()
		}
		var ls []int
		for i := range rec {
			l, _ := r.FieldPos(i)
			ls = append(ls, l)
		}
		recs, lines = append(recs, rec), append(lines, ls)
	}
}

// readAllScanner is readAllStd through csvScanner.
func readAllScanner(data string, bufSize int) (recs [][]string, lines [][]int, end string) {
	s := &csvScanner{r: bufio.NewReaderSize(strings.NewReader(data), bufSize)}
	for {
		buf, err := s.record(nil)
		if err == io.EOF {
			return recs, lines, "EOF"
		}
		if err != nil {
			return recs, lines, err.Error()
		}
		var rec []string
		var ls []int
		start := 1
		for i, end := range s.ends {
			rec = append(rec, string(buf[start:end]))
			start = end + 1
			if s.multi {
				ls = append(ls, s.lines[i])
			} else {
				ls = append(ls, s.recLine)
			}
		}
		recs, lines = append(recs, rec), append(lines, ls)
	}
}

func compareReaders(t *testing.T, data string) {
	t.Helper()
	wantRecs, wantLines, wantEnd := readAllStd(data)
	for _, size := range []int{16, 4096} { // 16: lines longer than the buffer
		recs, lines, end := readAllScanner(data, size)
		if fmt.Sprint(recs) != fmt.Sprint(wantRecs) || fmt.Sprint(lines) != fmt.Sprint(wantLines) || end != wantEnd {
			t.Fatalf("%q (buffer %d):\nscanner  %q %v %s\ncsv      %q %v %s", data, size, recs, lines, end, wantRecs, wantLines, wantEnd)
		}
	}
}

var csvCases = []string{
	"", "\n", "a", "a\n", "a,b\nc,d\n", "a,b\nc\n", "a,b\nc,d,e\n", "a,b,\n1,2,\n", ",\n,\n",
	"a,b\r\nc,d\r\n", "a,b\rc\n", "a\r", "a\n\r", "a\n\r\n\nb\n", "\n\na,b\n\n1,2", "a,b\n1,2\r\r\n",
	`"a","b"` + "\n" + `"1","2"`, `"a ""q"" b",c` + "\n", `"multi` + "\nline\",x\n\"y\",z\n", `"a` + "\r\n" + `b",c` + "\n1,2\n",
	`a,"b` + "\n\n" + `c"` + "\n", `"unterminated` + "\n", `a,b"c` + "\n", `"a"b,c` + "\n", `"a" ,b` + "\n", `a, "b"` + "\n",
	`""` + "\n", `"",""` + "\n" + `,` + "\n", `"a"` + "\r", `"a` + "\r", `"""",x` + "\n", "é,ü\n\"ö\",\"ß\"\n",
	"a,b\n\"x\ny\nz\",w\n1,2\n", "a\n\"\n", "h\n\"a\"\"\n",
	strings.Repeat("x", 40) + "," + strings.Repeat("y", 40) + "\n" + `"` + strings.Repeat("z", 50) + "\n" + strings.Repeat("w", 30) + `",q` + "\n",
}

func TestCSVScannerMatchesEncodingCSV(t *testing.T) {
	for _, data := range csvCases {
		compareReaders(t, data)
	}
}

func FuzzCSVScanner(f *testing.F) {
	for _, data := range csvCases {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data string) {
		compareReaders(t, data)
	})
}
