# Knaight: every entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
MODULES  := shared plugin manager testenv
PKGS     := $(foreach m,$(MODULES),github.com/knaight/knaight/$(m)/...)
BIN      := bin
WASM     := $(BIN)/plugin.wasm
GOTEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: manager wasm ## build the manager binary and plugin.wasm into bin/

.PHONY: manager
manager: ## build bin/knaight-manager
	$(GO) build -o $(BIN)/knaight-manager ./manager/cmd/knaight-manager

.PHONY: wasm
wasm: ## build the Envoy filter to bin/plugin.wasm (GOOS=wasip1, c-shared)
	cd plugin && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o ../$(WASM) .

.PHONY: test
test: lint ## vet, format check, and every test (PostgreSQL tests use a throwaway cluster)
	GOOS=wasip1 GOARCH=wasm $(GO) build github.com/knaight/knaight/shared/...
	$(GO) test $(GOTEST_FLAGS) $(PKGS)

.PHONY: run
run: ## run the system locally: throwaway PostgreSQL, manager, demo MCP server, gateway; Ctrl-C stops it
	$(GO) run ./testenv/cmd/knaight-run

.PHONY: test-soak
test-soak: ## minutes of MCP traffic through the gateway in both WASI modes, reporting how the filter fares (KNAIGHT_SOAK=10m per mode)
	$(GO) test -count=1 -tags soak -run TestSoak -timeout 60m -v ./testenv/e2e/

.PHONY: bench
bench: ## measure against the alternatives in one run; writes BENCHMARKS.md and BENCHMARKS.json (-quick: BENCH_FLAGS=-quick)
	$(GO) run ./testenv/cmd/knaight-bench $(BENCH_FLAGS)

.PHONY: bench-all
bench-all: ## every benchmark of every package, as go test prints them
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: lint
lint: ## go vet and gofmt -l over every module
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: fmt
fmt: ## gofmt -w every module
	gofmt -w $(MODULES)

.PHONY: tidy
tidy: ## go mod tidy in every module
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

.PHONY: clean
clean: ## remove build output and local run data
	rm -rf $(BIN) .run
