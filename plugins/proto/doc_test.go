package proto_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	pb "weir.dev/weir/plugins/proto"
)

// TestProtocolDocumentsEveryCall: PROTOCOL.md, the document authors in
// other languages write against, has a row for every call of the service.
func TestProtocolDocumentsEveryCall(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	methods := pb.Backend_ServiceDesc.Methods
	streams := pb.Backend_ServiceDesc.Streams
	if len(methods)+len(streams) < 10 {
		t.Fatalf("the service has %d calls, fewer than it should", len(methods)+len(streams))
	}
	var names []string
	for _, m := range methods {
		names = append(names, m.MethodName)
	}
	for _, s := range streams {
		names = append(names, s.StreamName)
	}
	for _, name := range names {
		row := regexp.MustCompile("(?m)^\\| `" + name + "` \\|")
		if !row.Match(doc) {
			t.Errorf("PROTOCOL.md has no row for %s in its table of calls (| `%s` | request | response | what it does |)", name, name)
		}
	}
	if !strings.Contains(string(doc), "version 1") {
		t.Error("PROTOCOL.md does not say which protocol version it documents")
	}
}
