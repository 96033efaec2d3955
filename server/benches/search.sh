#!/usr/bin/env bash
# AuthZEN search at scale: resource, subject and action search over an entities file of
# N entities (default 100,000: 1,000 companies, about 49,500 users and 49,500 shipments,
# gen_entities.py), on the five-policy folder and on the default policies. Each search is
# timed end to end with curl (REPS times, median), with the candidates it walked and the
# results it found. See README.md beside this script.
# Needs: python3, curl. Run from the workspace root:  bash server/benches/search.sh
set -euo pipefail
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/portcullis}
N=${N:-100000}
REPS=${REPS:-5}
PORT=${PORT:-18310}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ ! -x "$BIN" ]; then
  cargo build -q --release -p portcullis-server --bin portcullis
fi
python3 "$HERE/gen_entities.py" "$N" "$WORK/e.json"
USERS=$(python3 -c 'import json,sys; print(sum(e["uid"]["type"] == "Portal::User" for e in json.load(open(sys.argv[1]))))' "$WORK/e.json")
mkdir -p "$WORK/five"
cp "$ROOT/policies/schema.cedarschema" "$WORK/five/"
cp "$HERE/five-policies.cedar" "$WORK/five/policies.cedar"
cp -r "$ROOT/policies" "$WORK/policies"
echo "== $N entities: $USERS users, $USERS shipments"

# search NAME PATH BODY: REPS timed runs; prints the median time, the results and pages.
search() {
  local name=$1 path=$2 body=$3 times=() out
  for _ in $(seq "$REPS"); do
    out=$(curl -s -w '\n%{time_total}' "localhost:$PORT$path" -H 'content-type: application/json' -d "$body")
    times+=("$(tail -n1 <<<"$out")")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  local results next
  results=$(head -n -1 <<<"$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["results"]), "more" if d["page"]["next_token"] else "last")')
  printf '  %-62s %8.1f ms   %s\n' "$name" "$(echo "$median * 1000" | bc)" "$results"
}

for folder in five policies; do
  echo
  echo "######## $folder"
  t0=$(date +%s.%N)
  (cd "$WORK" && exec "$BIN" serve "$WORK/$folder" --listen "127.0.0.1:$PORT" --entities "$WORK/e.json" \
    --database-url "$WORK/$folder.db" >"$WORK/log" 2>&1) &
  echo $! >"$WORK/pid"
  until curl -sf "localhost:$PORT/healthz" >/dev/null; do sleep 0.05; done
  echo "serving after $(echo "$(date +%s.%N) - $t0" | bc) s"
  s='"subject": { "type": "User", "id": "u7" }'
  search "resource search, every page (limit 1000): u7 reads shipments" /access/v1/search/resource \
    "{ $s, \"action\": { \"name\": \"shipment.read\" }, \"resource\": { \"type\": \"Shipment\" }, \"page\": { \"limit\": 1000 } }"
  search "resource search, first page of 10: u7 reads shipments" /access/v1/search/resource \
    "{ $s, \"action\": { \"name\": \"shipment.read\" }, \"resource\": { \"type\": \"Shipment\" }, \"page\": { \"limit\": 10 } }"
  search "subject search, all (limit 1000): who reads shipment s7" /access/v1/search/subject \
    '{ "subject": { "type": "User" }, "action": { "name": "shipment.read" }, "resource": { "type": "Shipment", "id": "s7" }, "page": { "limit": 1000 } }'
  search "action search: what u7 may do on s7" /access/v1/search/action \
    "{ $s, \"resource\": { \"type\": \"Shipment\", \"id\": \"s7\" } }"
  kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
done
