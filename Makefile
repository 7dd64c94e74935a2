# kprod's build. `make test` is what CI runs (through .ci/run).
GO        ?= go
BIN       := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck
# Packages of the root module (the nested kafkatest module is tested by
# `make integration`).
PKGS      := ./...
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: all test unit examples lint vet staticcheck tidy-check cover bench demo integration clean

all: lint test

## test: every unit test (race detector and goleak on), then every example.
test: unit examples

unit:
	$(GO) test $(TEST_FLAGS) $(PKGS)

## examples: build and run every examples/* program against embedded kfake.
examples:
	bash scripts/run-examples.sh

## lint: go vet, staticcheck (installed into ./bin from the Go module proxy), gofmt, go mod tidy check.
lint: vet staticcheck fmt-check

vet:
	$(GO) vet $(PKGS)

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## cover: unit tests with coverage; writes cover.out and cover.html.
cover:
	$(GO) test -race -count=1 -coverprofile=cover.out -covermode=atomic $(PKGS)
	$(GO) tool cover -func=cover.out | tail -1
	$(GO) tool cover -html=cover.out -o cover.html

## bench: micro-benchmarks with allocations (send path, partitioners, presets).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

## demo: the quickstart against an embedded kfake cluster.
demo:
	$(GO) run ./examples/quickstart

clean:
	rm -rf $(BIN) cover.out cover.html
