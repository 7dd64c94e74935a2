#!/usr/bin/env bash
# release-check: proves that the modules kprod publishes can be used by a
# module outside this repository, as released, with no replace:
#
#  1. stages the working tree (tracked and untracked, not ignored files)
#     and zips the root module and kafkatest at the versions the nested
#     go.mod files require (golang.org/x/mod/zip, as the proxy would
#     serve them) into a file-based GOPROXY;
#  2. writes a service module, example.com/ordersvc, whose tests use
#     kafkatest as README.md shows, and `go get`s both modules through
#     that proxy (third-party modules come from the local module cache,
#     then the configured GOPROXY), with its own empty module cache so
#     nothing of this fake release reaches the real one;
#  3. vets and builds its tests, then runs them with GOFLAGS=-race and -p 4
#     on the in-process backend, on the container backend (the broker
#     image built by kafkatest from the proxied module, also with
#     -mod=vendor), and on an external kfake broker named by
#     KAFKATEST_BOOTSTRAP_SERVERS while KAFKA_BOOTSTRAP_SERVERS names
#     another that must stay untouched; the external one must be left
#     without the topics the tests created.
#
# Environment: RELEASE_CHECK_REV=<git revision> zips that commit instead
# of the working tree; KAFKATEST_VERSION (default: the root version kafkatest
# requires); RELEASE_CHECK_QUICK=1 stops after step 2's vet and build;
# CI=true makes a missing Docker engine a failure instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start=$(date +%s)
step() { echo "release-check: [$(($(date +%s) - start))s] $*" >&2; }

root_version=$(awk '$1 == "github.com/kprod/kprod" && $2 ~ /^v/ {print $2; exit}' kafkatest/go.mod)
kafkatest_version=${KAFKATEST_VERSION:-$root_version}
if [ -z "$root_version" ] || [[ "$root_version" == v0.0.0-* ]]; then
	echo "release-check: kafkatest/go.mod must require a released version of github.com/kprod/kprod, not '$root_version'" >&2
	exit 1
fi
it_root=$(awk '$1 == "github.com/kprod/kprod" && $2 ~ /^v/ {print $2; exit}' integration_test/go.mod)
if [ "$it_root" != "$root_version" ]; then
	echo "release-check: integration_test/go.mod requires kprod $it_root, kafkatest/go.mod $root_version: keep them equal" >&2
	exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

real_cache=$(go env GOMODCACHE)
upstream=$(go env GOPROXY)

# The helper: zips modules into a proxy, lists a broker's topics, finds a
# free port. Its dependencies come from kafkatest's go.sum, so nothing is
# looked up in the checksum database.
mkdir -p "$work/tool"
cp kafkatest/go.sum "$work/tool/go.sum"
mod_version=$(awk '$1 == "golang.org/x/mod" {print $2; exit}' kafkatest/go.mod)
kadm_version=$(awk '$1 == "github.com/twmb/franz-go/pkg/kadm" {print $2; exit}' kafkatest/go.mod)
kgo_version=$(awk '$1 == "github.com/twmb/franz-go" {print $2; exit}' kafkatest/go.mod)
cat >"$work/tool/go.mod" <<EOF
module releasecheck.invalid/tool

go 1.26.0

require (
	golang.org/x/mod $mod_version
	github.com/twmb/franz-go $kgo_version
	github.com/twmb/franz-go/pkg/kadm $kadm_version
)
EOF
cat >"$work/tool/main.go" <<'EOF'
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "release-check tool:", err)
		os.Exit(1)
	}
}

func run(cmd string, args []string) error {
	switch cmd {
	case "proxy": // proxy DIR PATH@VERSION=SRCDIR...
		for _, a := range args[1:] {
			mv, src, _ := strings.Cut(a, "=")
			path, version, _ := strings.Cut(mv, "@")
			if err := publish(args[0], module.Version{Path: path, Version: version}, src); err != nil {
				return fmt.Errorf("%s: %w", mv, err)
			}
		}
		return nil
	case "freeport":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		return nil
	case "topics": // topics ADDR: "topic records" per line, internal topics left out
		cl, err := kgo.NewClient(kgo.SeedBrokers(args[0]))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm := kadm.NewClient(cl)
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		for _, name := range topics.Names() {
			ends, err := adm.ListEndOffsets(ctx, name)
			if err != nil {
				return err
			}
			var n int64
			ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
			fmt.Println(name, n)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// publish writes mv, zipped from src, in the GOPROXY layout.
func publish(dir string, mv module.Version, src string) error {
	esc, err := module.EscapePath(mv.Path)
	if err != nil {
		return err
	}
	at := filepath.Join(dir, esc, "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(at, mv.Version+".zip"))
	if err != nil {
		return err
	}
	if err := zip.CreateFromDir(f, mv, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(at, mv.Version+".mod"), gomod, 0o644); err != nil {
		return err
	}
	info, _ := json.Marshal(map[string]any{"Version": mv.Version, "Time": time.Now().UTC().Format(time.RFC3339)})
	if err := os.WriteFile(filepath.Join(at, mv.Version+".info"), info, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(at, "list"), []byte(mv.Version+"\n"), 0o644)
}
EOF
step "building the helper"
(cd "$work/tool" && GOWORK=off GOFLAGS=-mod=mod GOPROXY="file://$real_cache/cache/download,$upstream" \
	GONOSUMDB=* GONOSUMCHECK=1 go build -o "$work/rc" .)

step "staging the working tree and zipping github.com/kprod/kprod@$root_version, github.com/kprod/kprod/kafkatest@$kafkatest_version"
mkdir -p "$work/src"
if [ -n "${RELEASE_CHECK_REV:-}" ]; then
	git archive "$RELEASE_CHECK_REV" | tar -xf - -C "$work/src"
else
	git ls-files -z --cached --others --exclude-standard |
		tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$work/src"
fi
"$work/rc" proxy "$work/proxy" \
	"github.com/kprod/kprod@$root_version=$work/src" \
	"github.com/kprod/kprod/kafkatest@$kafkatest_version=$work/src/kafkatest"

# The service: a module of its own, with tests written as README.md's
# kafkatest section shows. Two packages, so -p 4 runs two test binaries
# at once (and they share the image build lock).
svc=$work/ordersvc
mkdir -p "$svc/orders" "$svc/billing"
cat >"$svc/go.mod" <<'EOF'
module example.com/ordersvc

go 1.26.0
EOF
cat >"$svc/orders/orders.go" <<'EOF'
// Package orders publishes orders.
package orders

import (
	"context"
	"fmt"

	"github.com/kprod/kprod/kafkaproducer"
)

// Publish sends one order and waits for its acknowledgement.
func Publish(ctx context.Context, p *kafkaproducer.Producer, topic, id string, total int) error {
	_, err := p.Send(ctx, kafkaproducer.Record{Topic: topic, Key: []byte(id), Value: fmt.Appendf(nil, `{"total":%d}`, total)})
	return err
}
EOF
cat >"$svc/orders/orders_test.go" <<'EOF'
package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"

	"example.com/ordersvc/orders"
)

func TestPublishesOrder(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kafkatest.WithTopics(3, "orders"))
	p := c.Producer(t, presets.Reliable())
	if err := orders.Publish(context.Background(), p, c.Topic("orders"), "o-1", 12); err != nil {
		t.Fatal(err)
	}
	recs := c.ReadAll(t, c.Topic("orders"), kafkatest.ReadCommitted, 10*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != "o-1" {
		t.Fatalf("read %v", recs)
	}
}

func TestOrdersSurviveRestart(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kafkatest.RequireFaults(), kafkatest.WithTopics(1, "orders"))
	p := c.Producer(t, presets.Reliable())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := orders.Publish(ctx, p, c.Topic("orders"), "o-1", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := orders.Publish(ctx, p, c.Topic("orders"), "o-2", 2); err != nil {
		t.Fatal(err)
	}
	if recs := c.ReadAll(t, c.Topic("orders"), kafkatest.ReadCommitted, 10*time.Second); len(recs) != 2 {
		t.Fatalf("read %d records, want 2", len(recs))
	}
}
EOF
cat >"$svc/billing/billing_test.go" <<'EOF'
package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
)

func TestInvoices(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.WithTopics(2, "invoices"))
	p := c.Producer(t, presets.LowLatency())
	topic := c.NewTopic(t, 2)
	for _, tp := range []string{c.Topic("invoices"), topic} {
		if _, err := p.Send(context.Background(), kafkaproducer.Record{Topic: tp, Value: []byte("i-1")}); err != nil {
			t.Fatal(err)
		}
		if recs := c.ReadAll(t, tp, kafkatest.ReadUncommitted, 10*time.Second); len(recs) != 1 {
			t.Fatalf("%s: read %d records, want 1", tp, len(recs))
		}
	}
}
EOF

# The consumer's go environment: the fake release first, then the
# machine's module cache and its GOPROXY for everything else; a module
# cache of its own; the fake release is not in the checksum database.
export GOWORK=off GOTOOLCHAIN=local
export GOMODCACHE="$work/modcache"
export GOPROXY="file://$work/proxy,file://$real_cache/cache/download,$upstream"
export GONOSUMDB="github.com/kprod/kprod" GONOSUMCHECK=1
export GOFLAGS="-mod=mod -modcacherw -trimpath"
unset KAFKATEST_KFAKE_BINARY KAFKATEST_BACKEND KAFKATEST_REQUIRE KAFKATEST_IMAGE KAFKATEST_BOOTSTRAP_SERVERS
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"

cd "$svc"
step "go get github.com/kprod/kprod/kafkatest@$kafkatest_version (no replace)"
go get "github.com/kprod/kprod@$root_version" "github.com/kprod/kprod/kafkatest@$kafkatest_version" 2>&1 | grep -Ev '^go: (downloading|added|finding)' >&2 || true
go mod tidy
if grep -q '^replace' go.mod; then
	echo "release-check: the service's go.mod has a replace" >&2
	exit 1
fi
got=$(go list -m -f '{{.Version}}' github.com/kprod/kprod/kafkatest)
if [ "$got" != "$kafkatest_version" ]; then
	echo "release-check: resolved kafkatest $got, want $kafkatest_version" >&2
	exit 1
fi
step "go vet and build the service's tests"
go vet ./...
go test -count=1 -run '^$' ./... >/dev/null
if [ "${RELEASE_CHECK_QUICK:-}" = 1 ]; then
	step "ok (quick: tests not run)"
	exit 0
fi

flags=(-count=1 -p 4 -timeout 5m)
step "tests on in-process kfake, GOFLAGS=-race"
KAFKATEST_BACKEND=kfake KAFKATEST_REQUIRE=kfake GOFLAGS="$GOFLAGS -race" go test "${flags[@]}" ./...

if timeout 5 docker info >/dev/null 2>&1; then
	# kafkatest finds the image of a released kprod version by that
	# version alone (a release never changes); the simulated v0.1.0 does
	# change with the tree, so an image an earlier run built from it is
	# stale: remove those first.
	stale=$(docker images -q --filter label=org.kprod.kafkatest.build | sort -u)
	if [ -n "$stale" ]; then
		docker rmi -f $stale >/dev/null
	fi
	step "tests on the kfake-container backend, GOFLAGS=-race, -p 4 (kafkatest builds the image from the proxied module)"
	KAFKATEST_BACKEND=kfake-container KAFKATEST_REQUIRE=kfake-container GOFLAGS="$GOFLAGS -race" go test "${flags[@]}" ./...
	step "tests on the kfake-container backend, -mod=vendor"
	go mod vendor
	KAFKATEST_BACKEND=kfake-container KAFKATEST_REQUIRE=kfake-container GOFLAGS="-mod=vendor -trimpath" go test "${flags[@]}" ./orders
	rm -rf vendor
elif [ "${CI:-}" = true ]; then
	echo "release-check: no Docker engine answers (CI needs the kfake-container backend)" >&2
	exit 1
else
	step "no Docker engine: container runs skipped"
fi

step "tests on an external broker (KAFKATEST_BOOTSTRAP_SERVERS), KAFKA_BOOTSTRAP_SERVERS on another that must stay untouched"
(cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-trimpath GOPROXY="file://$real_cache/cache/download,$upstream" go build -o "$work/kfake-broker" ./cmd/kfake-broker)
brokers=()
for name in ext bystander; do
	port=$("$work/rc" freeport)
	"$work/kfake-broker" -listen "127.0.0.1:$port" >"$work/$name.log" 2>&1 &
	pids+=($!)
	brokers+=("127.0.0.1:$port")
done
for i in $(seq 50); do
	grep -q listening "$work/ext.log" && grep -q listening "$work/bystander.log" && break
	sleep 0.1
done
KAFKATEST_BOOTSTRAP_SERVERS=${brokers[0]} KAFKA_BOOTSTRAP_SERVERS=${brokers[1]} GOFLAGS="$GOFLAGS -race" \
	go test "${flags[@]}" -v ./... 2>&1 | grep -E '^(--- |ok|FAIL)|kafkatest: ' | sed 's/^/  /' >&2
test "${PIPESTATUS[0]}" = 0
left=$("$work/rc" topics "${brokers[0]}")
if [ -n "$left" ]; then
	echo "release-check: the external cluster kept topics the tests created:" >&2
	echo "$left" >&2
	exit 1
fi
touched=$("$work/rc" topics "${brokers[1]}")
if [ -n "$touched" ]; then
	echo "release-check: the KAFKA_BOOTSTRAP_SERVERS broker was used by kafkatest:" >&2
	echo "$touched" >&2
	exit 1
fi
step "ok"
