# Weir's build. `make demo` and `make test` are the two commands a newcomer
# runs (README.md); CI runs .ci/run, which calls `make test`.
GO      ?= go
BIN     := bin/weir
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X weir.dev/weir/cmd/weir/internal/cli.Version=$(VERSION)

.PHONY: build test bench demo generate lint clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/weir

test:
	$(GO) test ./...

bench: build
	./testdata/bench/run.sh

demo: build
	./$(BIN) apply --auto-approve examples/quickstart
	./$(BIN) models show classifier@production -C examples/quickstart

# The protocol's Go code (plugins/proto) is generated with Debian's protoc
# (apt-get install protobuf-compiler) and these pinned generators; the
# generated files are committed, and plugins/proto's TestGenerated checks them.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
GOBIN_DIR          := $(shell $(GO) env GOPATH)/bin

generate:
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	$(GO) install $(PROTOC_GEN_GO)
	$(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(GOBIN_DIR):$$PATH" $(GO) generate ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin examples/*/.weir
