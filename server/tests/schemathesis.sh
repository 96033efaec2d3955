#!/usr/bin/env bash
# API schema fuzzing: schemathesis against the server's own GET /openapi.json on loopback.
#
# Starts `portcullis serve` on a temp copy of policies/ with a SQLite store, bootstraps an
# owner and its API key with `portcullis users` (so the management routes are exercised too),
# runs schemathesis with every check and a bounded number of examples per operation, stops
# the server, and exits non-zero on any failure (a 5xx, a response outside the documented
# schema, status or content type...).
#
#   server/tests/schemathesis.sh [PORTCULLIS_BIN]
#
# PORTCULLIS_BIN defaults to $CARGO_TARGET_DIR/debug/portcullis (or target/debug/portcullis).
# SCHEMATHESIS_MAX_EXAMPLES (default 50) bounds the examples per operation; SCHEMATHESIS_SEED
# replays a run. schemathesis comes from the venv .ci/run installs (SCHEMATHESIS_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/portcullis/schemathesis-$SCHEMATHESIS_VERSION}"
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/portcullis}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
SEED="${SCHEMATHESIS_SEED:-1}"

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
  echo "error: no schemathesis in $VENV (run .ci/run, or: python3 -m venv $VENV && $VENV/bin/pip install schemathesis==$SCHEMATHESIS_VERSION)" >&2
  exit 2
fi
if [[ -x "$BIN" ]]; then BIN="$(realpath "$BIN")"; fi
if [[ ! -x "$BIN" ]]; then
  echo "error: no portcullis binary at $BIN (cargo build -p portcullis-server)" >&2
  exit 2
fi

# The server refuses unknown PORTCULLIS_* variables (CI exports PORTCULLIS_TEST_POSTGRES_URL).
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PORTCULLIS_' || true)

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cp -r policies "$WORK/policies"
DB="$WORK/portcullis.db"
"$BIN" migrate --database-url "$DB" >/dev/null
KEY="$("$BIN" users --database-url "$DB" create --company acme --account-type customer \
  --id own1 --login own1 --role owner --attr scope_all=true | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
# A second user of the same company, the target of the calls on one user (schemathesis.toml).
"$BIN" users --database-url "$DB" create --company acme --id adm1 --login adm1 --role admin --attr scope_all=true >/dev/null

(cd "$WORK" && PORTCULLIS_LOG=warn exec "$BIN" serve policies --listen 127.0.0.1:0 \
  --database-url "$DB" --no-watch --console 2>"$WORK/server.log") &
SERVER_PID=$!
URL=""
for _ in $(seq 1 400); do
  URL="$(sed -n 's/^portcullis: serving on //p' "$WORK/server.log" | head -n1)"
  [[ -n "$URL" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.05
done
[[ -n "$URL" ]] || { echo "error: the server never printed its address" >&2; cat "$WORK/server.log" >&2; exit 1; }
echo "schemathesis $SCHEMATHESIS_VERSION against $URL/openapi.json, $MAX_EXAMPLES examples per operation, seed $SEED"

status=0
# From the temp folder, so its example database (.schemathesis/) starts empty on every run.
CONFIG="$PWD/server/tests/schemathesis.toml"
cd "$WORK"
"$VENV/bin/schemathesis" --config-file "$CONFIG" run "$URL/openapi.json" \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 2 \
  --header "Authorization: Bearer $KEY" \
  --request-timeout 10 \
  --report junit --report-dir "$WORK/report" \
  --suppress-health-check too_slow \
  | tee "$WORK/schemathesis.out" || status=${PIPESTATUS[0]}
# The figure CI keeps: how many cases ran.
grep -E "^ *[0-9]+ generated" "$WORK/schemathesis.out" | sed 's/^ */schemathesis cases: /' || true
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "error: the server died during the run" >&2
  cat "$WORK/server.log" >&2
  status=1
fi
if grep -q "panicked" "$WORK/server.log"; then
  echo "error: the server panicked during the run" >&2
  grep -A5 "panicked" "$WORK/server.log" >&2
  status=1
fi
exit "$status"
