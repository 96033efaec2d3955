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

# search NAME PATH BODY: REPS timed runs, each a distinct search (`@` in BODY becomes a
# different id each time: u7, u20, u33... or s7, s20, s33..., so no run is answered from the
# decisions kept by an earlier one); prints the median time, the results of the last run and
# whether more pages follow.
search() {
  local name=$1 path=$2 body=$3 times=() out
  for i in $(seq 0 $((REPS - 1))); do
    out=$(curl -s -w '\n%{time_total}' "localhost:$PORT$path" -H 'content-type: application/json' -d "${body//@/$((7 + 13 * i))}")
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
  s='"subject": { "type": "User", "id": "u@" }'
  search "resource search, every page (limit 1000): a user reads shipments" /access/v1/search/resource \
    "{ $s, \"action\": { \"name\": \"shipment.read\" }, \"resource\": { \"type\": \"Shipment\" }, \"page\": { \"limit\": 1000 } }"
  search "resource search, first page of 10: a user reads shipments" /access/v1/search/resource \
    "{ $s, \"action\": { \"name\": \"shipment.read\" }, \"resource\": { \"type\": \"Shipment\" }, \"page\": { \"limit\": 10 } }"
  search "subject search, all (limit 1000): who reads a shipment" /access/v1/search/subject \
    '{ "subject": { "type": "User" }, "action": { "name": "shipment.read" }, "resource": { "type": "Shipment", "id": "s@" }, "page": { "limit": 1000 } }'
  search "action search: what a user may do on a shipment" /access/v1/search/action \
    "{ $s, \"resource\": { \"type\": \"Shipment\", \"id\": \"s@\" } }"
  kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true
done
