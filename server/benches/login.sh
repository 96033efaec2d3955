#!/usr/bin/env bash
# Sign-in load test: login throughput with the default argon2id parameters (19 MiB, 2 passes,
# 1 lane) and the server's peak memory under 20 concurrent logins. See README.md beside it.
# Needs: wrk, python3, curl. Run from the workspace root.
set -euo pipefail
ROOT=$(pwd)
BIN=${BIN:-$ROOT/target/release/portcullis}
PORT=${PORT:-18191}
DUR=${DUR:-15s}
CONNS=${CONNS:-20}
WORK=$(mktemp -d)
trap 'kill $(cat $WORK/pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || cargo build -q --release -p portcullis-server
cp -r "$ROOT/policies" "$WORK/policies"
HERE=$(cd "$(dirname "$0")" && pwd)
DB="$WORK/portcullis.db"
# The server refuses unknown PORTCULLIS_* variables; keep CI's test settings away from it.
for v in $(env | grep -o '^PORTCULLIS_[A-Z_]*' || true); do unset "$v"; done

"$BIN" migrate --database-url "$DB" >/dev/null
USERS=${USERS:-40}
export USERS
"$BIN" users --database-url "$DB" company acme --account-type customer >/dev/null
for i in $(seq 0 $((USERS - 1))); do
  "$BIN" users --database-url "$DB" create --company acme --id "u$i" --login "u$i@acme.example" \
    --email "u$i@acme.example" --role regular --attr scope_all=true --no-key >/dev/null
  echo "orange kettle sunrise" | "$BIN" users --database-url "$DB" password --user "u$i" --folder "$WORK/policies" >/dev/null
done

(cd "$WORK" && exec env ${SERVER_ENV:-} "$BIN" serve "$WORK/policies" --listen 127.0.0.1:$PORT --database-url "$DB" >"$WORK/log" 2>&1) &
echo $! >"$WORK/pid"
for _ in $(seq 200); do curl -sf localhost:$PORT/healthz >/dev/null && break; sleep 0.05; done
PID=$(cat "$WORK/pid")
echo '{"login":"nobody@acme.example","password":"orange kettle sunrise","device":"wrk"}' >"$WORK/unknown.json"
rss() { awk -v what="$1" '$1 == what":" {print $2/1024 " MB"}' /proc/"$PID"/status; }
echo "== idle: RSS $(rss VmRSS)"
echo "== successful logins of $USERS users in turn ($CONNS connections, $DUR)"
wrk -t2 -c"$CONNS" -d"$DUR" --latency -s "$HERE/login.lua" "http://127.0.0.1:$PORT/v1/auth/login" \
  | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
echo "   peak RSS $(rss VmHWM), now $(rss VmRSS) (anonymous $(rss RssAnon), files $(rss RssFile))"
echo "== unknown-login failures ($CONNS connections, $DUR)"
BODY="$WORK/unknown.json" wrk -t2 -c"$CONNS" -d"$DUR" --latency -s "$HERE/post.lua" "http://127.0.0.1:$PORT/v1/auth/login" \
  | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
echo "   peak RSS $(rss VmHWM), now $(rss VmRSS) (anonymous $(rss RssAnon), files $(rss RssFile))"
