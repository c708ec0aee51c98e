#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# fuzz-api.sh: schemathesis against a running appliance, driven by its own OpenAPI
# document. tests/tests/webui.rs runs it against the booted test appliance.
#
#   tests/fuzz-api.sh SPEC BASE_URL TOKEN
#
#   SPEC      the document (a file: GET /api/v1/openapi.json saved with the token)
#   BASE_URL  e.g. https://127.0.0.1:8443
#   TOKEN     a bearer token (login token or an apt_ API token)
#
# Checks: no 5xx, responses match their schemas, status codes and content types are the
# documented ones. Bounded: at most $MAX_EXAMPLES cases per operation (default 15), no
# stateful phase. Calls that would end the run are left out: shutdown, logout (revokes
# the token), login (repeated failures lock the client out), the password change and
# choosing the target (a fuzzed directory would become the target).
# SCHEMATHESIS names the program (default: target/venv/bin/schemathesis, installed by
# the webui test with pip).
#
# One worker: with two, schemathesis's threads parse Python source (hypothesis describing
# its strategies) at the same time, and CPython 3.11's ast module then sometimes fails
# with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905):
# an error of the tool, reported as an errored test, that failed two CI runs.
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 SPEC BASE_URL TOKEN" >&2
	exit 2
fi
spec=$1 base=$2 token=$3
root=$(cd "$(dirname "$0")/.." && pwd)
st=${SCHEMATHESIS:-$root/target/venv/bin/schemathesis}
report=$(dirname "$spec")/schemathesis-report

exec "$st" run "$spec" \
	--url "$base" \
	--header "Authorization: Bearer $token" \
	--tls-verify false \
	--checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
	--phases examples,coverage,fuzzing \
	--max-examples "${MAX_EXAMPLES:-15}" \
	--seed "${SEED:-20250101}" \
	--workers 1 \
	--request-timeout 60 \
	--generation-database none \
	--exclude-path /api/v1/shutdown \
	--exclude-path /api/v1/auth/logout \
	--exclude-path /api/v1/auth/login \
	--exclude-path /api/v1/settings/password \
	--exclude-path-regex '^/api/v1/target$' \
	--report junit --report-dir "$report" \
	--no-color
