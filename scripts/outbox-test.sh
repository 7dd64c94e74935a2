#!/usr/bin/env bash
# outbox-test: runs the outbox module's tests (or its benchmark) against a
# throwaway PostgreSQL 15 cluster and SQLite.
#
# Usage: scripts/outbox-test.sh [test|bench|long|env]
#   test   (default) go test -race over ./... in outbox/ (about a minute)
#   bench  the relay benchmark on PostgreSQL and SQLite (docs/BENCHMARKS.md)
#   long   the 100,000-row end-to-end test (OUTBOX_LONG=1), without -race
#   env    start the cluster, print OUTBOX_PG_DSN and wait (for development)
#
# With OUTBOX_PG_DSN already set, that database is used and nothing is
# started. Otherwise initdb and pg_ctl (PG_BIN, default
# /usr/lib/postgresql/15/bin) create a cluster in a temporary directory,
# listening only on 127.0.0.1 at a random port with trust authentication,
# run as the postgres user when this script runs as root (initdb refuses
# root), and remove it on exit. No PostgreSQL found: the tests run on
# SQLite only and the PostgreSQL ones skip, saying so (CI=true makes that
# a failure instead).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

pgdir=
stop_pg() {
	if [ -n "$pgdir" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
		rm -rf "$pgdir"
		pgdir=
	fi
}
trap stop_pg EXIT

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start_pg() {
	pgdir=$(mktemp -d /tmp/kprod-outbox-pg.XXXXXX)
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$pgdir"
	fi
	as_pg "$PG_BIN/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-sync >"$pgdir/initdb.log" 2>&1 || {
		cat "$pgdir/initdb.log"
		return 1
	}
	local try port
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		if as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/pg.log" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c max_connections=200 -c shared_buffers=256MB" \
			start >/dev/null; then
			export OUTBOX_PG_DSN="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			echo "outbox-test: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($pgdir)"
			return 0
		fi
	done
	cat "$pgdir/pg.log"
	return 1
}

if [ -z "${OUTBOX_PG_DSN:-}" ]; then
	if [ -x "$PG_BIN/initdb" ]; then
		start_pg
	elif [ "${CI:-}" = true ]; then
		echo "outbox-test: no PostgreSQL at $PG_BIN (set PG_BIN or OUTBOX_PG_DSN)" >&2
		exit 1
	else
		echo "outbox-test: no PostgreSQL at $PG_BIN: PostgreSQL tests will skip" >&2
	fi
fi

cd outbox
case "$mode" in
test)
	go test -race -count=1 -timeout 10m ./...
	;;
bench)
	go test -run '^$' -bench 'BenchmarkRelay' -benchtime 1x -count=1 -timeout 20m .
	;;
long)
	OUTBOX_LONG=1 go test -run 'TestEndToEnd' -count=1 -timeout 20m -v .
	;;
env)
	echo "export OUTBOX_PG_DSN='$OUTBOX_PG_DSN'"
	while :; do sleep 3600; done
	;;
*)
	echo "usage: $0 [test|bench|long|env]" >&2
	exit 2
	;;
esac
