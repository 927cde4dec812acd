package gen

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestWriteCSVIsDeterministicAndWellFormed(t *testing.T) {
	var a, b, c bytes.Buffer
	if err := WriteCSV(&a, 2000, 1); err != nil {
		t.Fatal(err)
	}
	WriteCSV(&b, 2000, 1)
	WriteCSV(&c, 2000, 2)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same seed gave different bytes")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("another seed gave the same bytes")
	}
	recs, err := csv.NewReader(&a).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2001 || len(recs[0]) != len(Header) {
		t.Fatalf("got %d records of %d fields", len(recs), len(recs[0]))
	}
	for name := range Rules() {
		found := false
		for _, h := range Header {
			found = found || h == name
		}
		if !found {
			t.Errorf("rule for %s, which is not a column", name)
		}
	}
}
