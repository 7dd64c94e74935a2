#!/usr/bin/env bash
# Runs kprod's integration suite with the race detector: the kafkatest
# module's own tests, then the integration_test module (presets, typed
# sends, transactions, dead-letter/spool and Close through outages, kcat
# interop), each on every kafkatest backend this machine has.
#
# Environment: KAFKATEST_BOOTSTRAP_SERVERS adds an external cluster,
# KAFKATEST_IMAGE a real broker image; CI=true makes a missing Docker
# engine or kcat a failure instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# No registry is reachable: testcontainers' reaper image cannot be pulled.
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"

# Containers left by a killed test process (there is no reaper to remove
# them) carry kafkatest's label; remove them before and after.
remove_leftovers() {
	command -v docker >/dev/null || return 0
	local ids
	ids=$(timeout 10 docker ps -aq --filter label=org.kprod.kafkatest 2>/dev/null || true)
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086
		timeout 60 docker rm -f $ids >/dev/null 2>&1 || true
	fi
}
bin=$(mktemp -d)
trap 'rm -rf "$bin"; remove_leftovers' EXIT
remove_leftovers

if timeout 5 docker info >/dev/null 2>&1; then
	# Build the static broker once for every test process (kafkatest
	# would otherwise build it once per process).
	CGO_ENABLED=0 GOOS=linux go build -ldflags='-s -w' -o "$bin/kfake-broker" ./cmd/kfake-broker
	export KAFKATEST_KFAKE_BINARY="$bin/kfake-broker"
	if [ "${CI:-}" = true ]; then
		export KAFKATEST_REQUIRE="${KAFKATEST_REQUIRE:-kfake-container,kfake}"
	fi
else
	if [ "${CI:-}" = true ]; then
		echo "integration: no Docker engine answers (CI needs the kfake-container backend)" >&2
		exit 1
	fi
	echo "integration: no Docker engine: the kfake-container backend will be skipped" >&2
fi
if ! command -v kcat >/dev/null; then
	if [ "${CI:-}" = true ]; then
		echo "integration: kcat is missing (apt-get install -y kcat)" >&2
		exit 1
	fi
	echo "integration: kcat is missing: the interop tests will be skipped" >&2
fi

flags=(-race -count=1 -timeout 10m)
(cd kafkatest && go test "${flags[@]}" ./...)
(cd integration_test && go test "${flags[@]}" ./...)
