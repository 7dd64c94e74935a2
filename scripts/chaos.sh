#!/usr/bin/env bash
# Runs kprod's fault campaign (chaos/, docs/RELIABILITY.md): a kfake broker
# and a kprod workload in FROM scratch containers, faults injected between
# them, every claim of the workload checked against the broker's log.
#
#   scripts/chaos.sh full    every scenario and path (make chaos, ~13 min on
#                            2 cores); rewrites the results in docs/RELIABILITY.md
#   scripts/chaos.sh short   three scenarios (make chaos-short, part of
#                            make test, ~75 s); writes no file
#
# Without a Docker engine it says so and exits 0 (CI=true makes that a
# failure). The one-way partition and the read-only spool need root (nsenter,
# iptables, mount); without it those runs are reported as not run.
# Environment: CHAOS_SEED, CHAOS_ITERATIONS, CHAOS_ONLY, CHAOS_KEEP (see
# go doc ./chaos, from the chaos directory).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-short}"
case "$mode" in
full | short) ;;
*)
	echo "usage: scripts/chaos.sh full|short" >&2
	exit 2
	;;
esac

if ! command -v docker >/dev/null || ! timeout 15 docker info >/dev/null 2>&1; then
	if [ "${CI:-}" = true ]; then
		echo "chaos: no Docker engine answers (CI needs one)" >&2
		exit 1
	fi
	echo "chaos: SKIPPED: no Docker engine answers (docker info failed); the fault campaign needs one"
	exit 0
fi
command -v kcat >/dev/null || echo "chaos: kcat is missing (apt-get install -y kcat): the read_committed cross-check is reported as not run" >&2

# No registry is reachable and nothing is pulled; no reaper either.
export TESTCONTAINERS_RYUK_DISABLED=true
export CHAOS_MODE="$mode"
timeout=8m
if [ "$mode" = full ]; then
	export CHAOS_REPORT="${CHAOS_REPORT:-$PWD/docs/RELIABILITY.md}"
	timeout=30m
fi
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The full test output goes to $log; the terminal gets one line a run.
set +e
(cd chaos && go test -count=1 -timeout "$timeout" -run TestCampaign -v .) 2>&1 | tee "$log" |
	grep --line-buffered -E '^(--- |PASS|FAIL|ok|panic)|chaos:|=== [a-z]|checked:|promise broken|run error|exited'
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
	echo "chaos: FAILED; the last 60 lines of the test output:" >&2
	tail -60 "$log" >&2
fi
echo "chaos ($mode): $(($(date +%s) - start))s"
exit "$status"
