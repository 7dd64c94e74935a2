#!/usr/bin/env bash
# license-check: fails when a package that kprod's published modules build
# with, tests included, is under a license outside ALLOWED or one that
# go-licenses (github.com/google/go-licenses, installed into ./bin by
# `make license-check`) cannot identify.
#
# Scope: the root module (github.com/kprod/kprod), kafkatest
# (github.com/kprod/kprod/kafkatest) and outbox
# (github.com/kprod/kprod/outbox), the modules users import; their
# packages and every package those import, test-only imports included, since
# a test-only dependency becomes a shipped one by moving an import. The
# benchmarks/ and integration_test/ modules are never imported by users and
# are not checked. kprod's own packages are checked too, so a module without
# its LICENSE file fails.
#
# Allowed: permissive licenses compatible with kprod's Apache-2.0.
# Refused: GPL, AGPL and LGPL (copyleft), MPL-2.0 (weak, file-level copyleft:
# compatible with Apache-2.0 distribution, but it puts obligations on anyone
# who ships a modified copy; kprod has no such dependency, and taking one is
# a decision for review, made by adding it here with the module named), and
# anything unknown (no license file, or a text go-licenses cannot classify).
#
# Offline: go-licenses reads the license files in the module cache, so once
# `go mod download` has run in both modules (and ./bin/go-licenses exists)
# it needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

GO_LICENSES=${GO_LICENSES:-$PWD/bin/go-licenses} # an absolute path
ALLOWED=Apache-2.0,BSD-2-Clause,BSD-3-Clause,MIT,ISC
MODULES=(. kafkatest outbox)
# Packages checked by hand because go-licenses' classifier cannot name
# their license text, each with what it is:
#   modernc.org/mathutil (outbox, through modernc.org/sqlite): BSD-3-Clause
#   (LICENSE: "Copyright (c) 2014 The mathutil Authors", the three-clause
#   text with "the names of the authors" wording). Re-check it on upgrade.
IGNORE=modernc.org/mathutil

status=0
for m in "${MODULES[@]}"; do
	# go-licenses warns about every package with assembly (klauspost/compress,
	# lz4); keep its output for a failure.
	if ! out=$(cd "$m" && "$GO_LICENSES" check --include_tests --allowed_licenses="$ALLOWED" --ignore="$IGNORE" ./... 2>&1); then
		echo "license-check: module $m:"
		grep -v -E 'contains non-Go code|\.s$' <<<"$out" || true
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	echo "license-check: every package of ${MODULES[*]} is under ${ALLOWED//,/, }"
fi
exit "$status"
