#!/usr/bin/env bash
# Runs every examples/* program and kprod-perf with --brokers against a
# bare cluster: cmd/kfake-broker in its own process on a loopback port,
# with no topics, once with auto-creation allowed and once without. Each
# program must provision what it needs (topics.Ensure) and exit 0.
#
# Usage: run-examples-bare.sh [BIN_DIR]
# BIN_DIR holds examples built by run-examples.sh (one binary per
# examples/* directory); missing ones, kfake-broker and kprod-perf are
# built into it. Without BIN_DIR a temporary directory is used.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${1:-}" ]; then
	bin=$1
	own_bin=
else
	bin=$(mktemp -d)
	own_bin=$bin
fi
broker_pid=
work=$(mktemp -d)
stop_broker() {
	if [ -n "$broker_pid" ]; then
		kill "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
		broker_pid=
	fi
}
trap 'stop_broker; rm -rf "$work" $own_bin' EXIT

go build -o "$bin/kfake-broker" ./cmd/kfake-broker
go build -o "$bin/kprod-perf" ./cmd/kprod-perf
examples=()
for dir in examples/*/; do
	name=$(basename "$dir")
	[ -x "$bin/$name" ] || go build -o "$bin/$name" "./$dir"
	examples+=("$name")
done
# Nested modules' programs (as run-examples.sh builds them).
for dir in outbox/examples/orders; do
	name=${dir%%/*}-$(basename "$dir")
	[ -x "$bin/$name" ] || go -C "${dir%%/*}" build -o "$bin/$name" "./${dir#*/}"
	examples+=("$name")
done

# start_broker starts kfake-broker with the given flags on a free
# loopback port, trying up to 5 random ports, and sets broker_pid and
# addr once it prints its listening line.
start_broker() {
	local try port
	for try in 1 2 3 4 5; do
		port=$(( 20000 + RANDOM % 40000 ))
		"$bin/kfake-broker" -listen "127.0.0.1:$port" "$@" >"$work/broker.out" 2>"$work/broker.err" &
		broker_pid=$!
		for _ in $(seq 100); do # up to 5s
			if grep -q 'listening on' "$work/broker.out" 2>/dev/null; then
				addr=127.0.0.1:$port
				return 0
			fi
			kill -0 "$broker_pid" 2>/dev/null || break
			sleep 0.05
		done
		stop_broker
	done
	echo "kfake-broker did not start:"
	cat "$work/broker.err"
	return 1
}

status=0
for mode in auto-create no-auto-create; do
	flags=()
	[ "$mode" = auto-create ] && flags=(-auto-create-topics)
	start_broker "${flags[@]}"
	for name in "${examples[@]}"; do
		start=$(date +%s%N)
		if out=$(timeout 60 "$bin/$name" --brokers "$addr" 2>&1); then
			echo "bare cluster ($mode) example $name: ok ($(( ($(date +%s%N) - start) / 1000000 ))ms)"
		else
			echo "bare cluster ($mode) example $name: FAILED"
			echo "$out" | tail -30
			status=1
		fi
	done
	start=$(date +%s%N)
	if out=$(timeout 60 "$bin/kprod-perf" --bootstrap-server "$addr" --topic perfbar --num-records 5000 --partitions 3 --report-interval 1m 2>&1); then
		echo "bare cluster ($mode) kprod-perf: ok ($(( ($(date +%s%N) - start) / 1000000 ))ms)"
	else
		echo "bare cluster ($mode) kprod-perf: FAILED"
		echo "$out" | tail -30
		status=1
	fi
	stop_broker
done
exit $status
