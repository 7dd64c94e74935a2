# kprod's build. `make test` is what CI runs (through .ci/run).
GO        ?= go
BIN       := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck
# Packages of the root module (the nested kafkatest module is tested by
# `make integration`).
PKGS      := ./...
TEST_FLAGS ?= -race -count=1 -timeout 15m

# Nested modules: kafkatest (for users) and integration_test (kprod's own
# black-box suite); they hold testcontainers so the core module never does.
NESTED    := kafkatest integration_test

.PHONY: all test unit examples integration bench-compare lint vet staticcheck fmt-check tidy-check deps-check cover bench demo clean

all: lint test

## test: every unit test (race detector and goleak on), every example, and
## the integration suite (kfake in a container and in-process; kcat interop).
test: unit examples integration

unit:
	$(GO) test $(TEST_FLAGS) $(PKGS)

## examples: build and run every examples/* program against embedded kfake.
examples:
	bash scripts/run-examples.sh

## integration: kafkatest and integration_test on every backend available (~1 min).
integration:
	bash scripts/integration.sh

## lint: go vet, staticcheck (installed into ./bin from the Go module proxy),
## gofmt, go mod tidy, and a check that the core never reaches container code.
lint: vet staticcheck fmt-check tidy-check deps-check

vet:
	$(GO) vet $(PKGS)
	for m in $(NESTED); do (cd $$m && $(GO) vet ./...) || exit 1; done

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)
	for m in $(NESTED); do (cd $$m && $(STATICCHECK) ./...) || exit 1; done

tidy-check:
	$(GO) mod tidy -diff
	for m in $(NESTED); do (cd $$m && $(GO) mod tidy -diff) || exit 1; done

## deps-check: a service importing kprod never downloads docker or testcontainers code.
deps-check:
	@if $(GO) list -deps ./... | grep -E 'testcontainers|github.com/docker/|/kafkatest'; then echo "core imports container code"; exit 1; fi
	@if $(GO) list -m all | grep -E 'testcontainers|github.com/docker/'; then echo "core module graph holds container modules"; exit 1; fi

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

## bench-compare: kprod against raw franz-go, sarama, kafka-go and
## confluent-kafka-go (the benchmarks/ module); rewrites docs/BENCHMARKS.md.
bench-compare:
	bash scripts/bench-compare.sh

## demo: the quickstart against an embedded kfake cluster.
demo:
	$(GO) run ./examples/quickstart

clean:
	rm -rf $(BIN) cover.out cover.html
