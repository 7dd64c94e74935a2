# kprod's build. `make test` is what CI runs (through .ci/run).
GO        ?= go
BIN       := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck
# The newest Go release kprod supports. go.mod's go line (1.26.0) is the
# oldest; lint-next and unit-next run on this one, which the go command
# fetches through the module proxy (GOTOOLCHAIN), with a staticcheck built
# by it.
GO_NEXT   ?= go1.27.3
STATICCHECK_NEXT := $(BIN)/$(GO_NEXT)/staticcheck
REVIVE_VERSION := v1.17.0
REVIVE    := $(BIN)/revive
GO_LICENSES_VERSION := v1.6.0
GO_LICENSES := $(BIN)/go-licenses
# Packages of the root module (the nested kafkatest module is tested by
# `make integration`).
PKGS      := ./...
TEST_FLAGS ?= -race -count=1 -timeout 15m

# Nested modules: kafkatest (for users) and integration_test (kprod's own
# black-box suite); they hold testcontainers so the core module never does.
# outbox holds the SQL drivers (pgx, modernc SQLite) for the same reason;
# chaos is the fault campaign's driver (make chaos).
NESTED    := kafkatest integration_test outbox chaos

.PHONY: all test unit examples integration release-check bench-compare lint vet staticcheck fmt-check tidy-check deps-check cover bench demo clean doc-check license-check lint-next unit-next chaos chaos-short outbox

all: lint test

## test: every unit test (race detector and goleak on), every example, and
## the integration suite (kfake in a container and in-process; kcat interop)
## and the short fault campaign.
test: unit examples integration release-check chaos-short outbox

unit:
	$(GO) test $(TEST_FLAGS) $(PKGS)

## examples: build and run every examples/* program against embedded kfake.
examples:
	bash scripts/run-examples.sh

## integration: kafkatest and integration_test on every backend available (~1 min).
integration:
	bash scripts/integration.sh

## chaos: the fault campaign (docs/RELIABILITY.md): broker and producer in
## FROM scratch containers, every fault scenario on every send path, checked
## record by record; rewrites the tables in docs/RELIABILITY.md (~13 min on
## 2 cores). Exits 0 with a message when no Docker engine answers.
chaos:
	bash scripts/chaos.sh full

## chaos-short: three scenarios of the campaign (~75 s), writing no file.
chaos-short:
	bash scripts/chaos.sh short

## outbox: the outbox module's tests (-race) on SQLite and on a throwaway
## PostgreSQL 15 that scripts/outbox-test.sh starts (about 2 minutes).
outbox:
	bash scripts/outbox-test.sh

## release-check: a module outside the repo `go get`s kprod and kafkatest at
## the versions the nested go.mod files require, from a file GOPROXY built
## from the tree (no replace), and runs its kafkatest tests on each backend.
release-check:
	bash scripts/release-check.sh

## lint: go vet, staticcheck (installed into ./bin from the Go module proxy),
## gofmt, go mod tidy, a check that the core never reaches container code,
## doc comments, dependency licenses, then vet and staticcheck on $(GO_NEXT).
lint: vet staticcheck fmt-check tidy-check deps-check doc-check license-check lint-next

vet:
	$(GO) vet $(PKGS)
	for m in $(NESTED); do (cd $$m && $(GO) vet ./...) || exit 1; done

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)
	for m in $(NESTED); do (cd $$m && $(STATICCHECK) ./...) || exit 1; done

## lint-next: vet and staticcheck again on the newest supported Go, with a
## staticcheck built by that Go (one built by an older Go cannot load a
## newer standard library).
$(STATICCHECK_NEXT):
	GOTOOLCHAIN=$(GO_NEXT) GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint-next: export GOTOOLCHAIN := $(GO_NEXT)
lint-next: $(STATICCHECK_NEXT)
	$(GO) version
	$(GO) vet $(PKGS)
	$(STATICCHECK_NEXT) $(PKGS)
	for m in $(NESTED); do (cd $$m && $(GO) vet ./... && $(STATICCHECK_NEXT) ./...) || exit 1; done

## unit-next: the unit tests on the newest supported Go (CI runs it after
## `make test`).
unit-next: export GOTOOLCHAIN := $(GO_NEXT)
unit-next:
	$(GO) version
	$(GO) test $(TEST_FLAGS) $(PKGS)

## doc-check: every package has a package comment and every exported
## identifier a doc comment starting with its name (revive's exported and
## package-comments rules; revive.toml), in the root and nested modules.
$(REVIVE):
	GOBIN=$(BIN) $(GO) install github.com/mgechev/revive@$(REVIVE_VERSION)

doc-check: $(REVIVE)
	$(REVIVE) -config revive.toml -formatter plain $(PKGS)
	for m in $(NESTED); do (cd $$m && $(REVIVE) -config ../revive.toml -formatter plain ./...) || exit 1; done

## license-check: every package the root, kafkatest and outbox modules build with,
## tests included, is Apache-2.0, BSD, MIT or ISC (go-licenses; the list and
## why is in scripts/license-check.sh). Offline once modules are downloaded.
$(GO_LICENSES):
	GOBIN=$(BIN) $(GO) install github.com/google/go-licenses@$(GO_LICENSES_VERSION)

license-check: $(GO_LICENSES)
	GO_LICENSES=$(GO_LICENSES) bash scripts/license-check.sh

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
