# Weir's build. `make demo` and `make test` are the two commands a newcomer
# runs (README.md); CI runs .ci/run, which calls `make test`.
GO      ?= go
BIN     := bin/weir
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X weir.dev/weir/cmd/weir/internal/cli.Version=$(VERSION)

.PHONY: build test test-k8s bench demo generate lint clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/weir
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o bin/weir-launcher ./cmd/weir-launcher

test:
	$(GO) test ./...

# The kubernetes backend's tests against a real control plane (etcd,
# kube-apiserver, controller-manager, scheduler, kwok nodes; hack/k8s/README.md).
# The first run on a machine builds it (~25 min, cached in ~/.cache/weir/k8s);
# then each run starts a cluster (~15 s), tests with WEIR_K8S_DIR set, and stops
# it. Without a cluster `make test` skips these tests (they fail under CI=true
# unless WEIR_K8S_SKIP is set, as .ci/run does before running this target).
# K8S_PKGS adds go test arguments before the packages: '-run TestJob ./cmd/weir'.
# cmd/weir's TestKubernetes* (weir apply serving on the cluster) run too.
test-k8s:
	GO=$(GO) ./hack/k8s/with-cluster.sh sh -c '$(GO) test $(K8S_PKGS) ./plugins/kubernetes/... ./internal/k8stest/... && $(GO) test -run "^TestKubernetes" ./cmd/weir'

# Each benchmark script runs even when one before it fails, and make bench
# fails when any did. run-docker.sh needs a Docker Engine and is skipped
# without one; run-k8s.sh, when present, runs on a fresh test cluster
# (hack/k8s/with-cluster.sh) and is skipped when the cluster cannot be built.
bench: build
	@status=0; \
	echo "== testdata/bench/run.sh: weir plan against cue export"; \
	./testdata/bench/run.sh || status=1; \
	echo; echo "== testdata/bench/run-frontends.sh: weir plan of the same spec in CUE, HCL and Jsonnet"; \
	WEIR=$(BIN) ./testdata/bench/run-frontends.sh || status=1; \
	echo; echo "== testdata/bench/run-policy.sh: weir policy check against opa eval, weir review against weir plan"; \
	WEIR=$(BIN) ./testdata/bench/run-policy.sh || status=1; \
	echo; echo "== testdata/bench/run-exec.sh: weir apply against make -j2"; \
	WEIR=$(BIN) ./testdata/bench/run-exec.sh || status=1; \
	echo; echo "== plugins/host: 1,000 no-op steps through the local backend as a plugin against in-process (goal: ratio <= 1.2), and the floor: the same spawns through a bare Go process"; \
	$(GO) test ./plugins/host -run '^$$' -bench 'Noop1000|Floor' -benchtime 3x || status=1; \
	$(GO) test ./plugins/host -run '^$$' -bench RoundTrip -benchtime 2000x || status=1; \
	$(GO) test ./plugins/host -run '^$$' -bench Exchange -benchtime 20000x || status=1; \
	echo; echo "== testdata/bench/run-docker.sh: the docker backend against docker run"; \
	if docker info >/dev/null 2>&1; then ./testdata/bench/run-docker.sh || status=1; \
	else echo "skipped: no Docker Engine answers (docker info)"; fi; \
	if [ -x testdata/bench/run-k8s.sh ]; then \
		echo; echo "== testdata/bench/run-k8s.sh: the kubernetes backend on a test cluster"; \
		if k8sbin=$$(hack/k8s/build.sh); then \
			K8S_BIN=$$k8sbin WEIR=$(BIN) GO=$(GO) ./hack/k8s/with-cluster.sh ./testdata/bench/run-k8s.sh || status=1; \
		else echo "skipped: the test cluster cannot be built here (hack/k8s/build.sh failed)"; fi; \
	fi; \
	exit $$status

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
