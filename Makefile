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

generate:
	$(GO) generate ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin examples/*/.weir
