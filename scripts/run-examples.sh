#!/usr/bin/env bash
# Builds every examples/* program and runs it with no arguments (each starts
# an embedded kfake cluster and must exit 0 within its time limit), then
# runs them all and kprod-perf against a bare kfake-broker process
# (run-examples-bare.sh: no topics, with and without auto-creation).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
status=0
# Programs of nested modules, built from their module (their dependencies,
# such as the outbox's SQL drivers, stay out of the root module), run as
# "<module>-<name>"; run-examples-bare.sh runs them too.
nested_examples=(outbox/examples/orders)
for dir in examples/*/ "${nested_examples[@]}"; do
	case $dir in
	examples/*)
		name=$(basename "$dir")
		go build -o "$bin/$name" "./$dir"
		;;
	*)
		name=${dir%%/*}-$(basename "$dir")
		go -C "${dir%%/*}" build -o "$bin/$name" "./${dir#*/}"
		;;
	esac
	start=$(date +%s)
	if out=$(timeout 60 "$bin/$name" 2>&1); then
		echo "example $name: ok ($(( $(date +%s) - start ))s)"
	else
		echo "example $name: FAILED"
		echo "$out" | tail -30
		status=1
	fi
done
bash scripts/run-examples-bare.sh "$bin" || status=1
exit $status
