#!/usr/bin/env bash
# bench-compare.sh: the cross-client producer benchmark. Builds
# cmd/kfake-broker and the benchmarks/ module (kbench), starts the broker in
# its own process on 127.0.0.1, runs every case (3 interleaved rounds, 40 for the franz-go pairs), stops
# the broker, and writes docs/BENCHMARKS.md and docs/benchmarks.svg.
# About 10 minutes on 2 cores once built (9m54s measured with a load average of 2-5 from other work;
# the pair section, 40 rounds of 14 runs, is half of it; the first cgo build of librdkafka adds a minute or two).
# A/B of two builds (say, a changed core in a scratch worktree), without rewriting the report:
#   (cd benchmarks && go build -o /tmp/kbench-b .)   # in the other tree, then, with a broker running:
#   kbench -brokers 127.0.0.1:39092 -ab /tmp/kbench-b -ab-cases kprod-err+metrics/high-throughput -pair-rounds 30 -results /tmp/ab.json
#
#   scripts/bench-compare.sh
#   BENCH_ARGS='-rounds 1 -records 200000' scripts/bench-compare.sh   # quick look
#   BENCH_ARGS='-sections tune' scripts/bench-compare.sh              # one section, others kept from results.json
#   BENCH_PORT=39093 scripts/bench-compare.sh                         # another broker port
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
port=${BENCH_PORT:-39092}
work=$(mktemp -d)
bpid=""
cleanup() {
	if [[ -n "$bpid" ]]; then
		kill "$bpid" 2>/dev/null || true
		wait "$bpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "building kfake-broker and kbench (confluent-kafka-go links librdkafka with cgo: the first build takes a minute)"
(cd "$root" && go build -o "$work/kfake-broker" ./cmd/kfake-broker)
(cd "$root/benchmarks" && CGO_ENABLED=1 go build -o "$work/kbench" .)

"$work/kfake-broker" -listen "127.0.0.1:$port" -topics bench -partitions 6 >"$work/broker.out" 2>"$work/broker.err" &
bpid=$!
for _ in $(seq 100); do
	grep -q listening "$work/broker.out" 2>/dev/null && break
	if ! kill -0 "$bpid" 2>/dev/null; then
		echo "kfake-broker exited:" >&2
		cat "$work/broker.err" >&2
		exit 1
	fi
	sleep 0.1
done
grep -q listening "$work/broker.out" || { echo "kfake-broker did not start on 127.0.0.1:$port" >&2; exit 1; }
echo "kfake-broker pid $bpid on 127.0.0.1:$port"

cd "$root/benchmarks"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$work/kbench" -brokers "127.0.0.1:$port" ${BENCH_ARGS:-}
echo "wrote docs/BENCHMARKS.md, docs/benchmarks.svg and benchmarks/results.json"
