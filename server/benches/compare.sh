#!/usr/bin/env bash
# Portcullis against the calibration server (calibration.rs: axum + cedar-policy, the whole
# entities file in one Cedar `Entities`, no cache), on the same data, in one run, alternating,
# with the ratios. See README.md beside this script.
# Needs: wrk, python3, curl, sqlite3; psql and a PostgreSQL at $PG for the PostgreSQL rows.
# Run from the workspace root:  bash server/benches/compare.sh
set -euo pipefail
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/portcullis}
CAL=${CAL:-$TARGET/release/examples/calibration}
DUR=${DUR:-5s}
ROUNDS=${ROUNDS:-3}
ENTITIES=${ENTITIES:-11250}
USERS=${USERS:-10000}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PGDB=portcullis_compare_$$
trap 'for p in $WORK/*.pid; do kill $(cat $p) 2>/dev/null || true; done; psql -q "$PG" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ ! -x "$BIN" ] || [ ! -x "$CAL" ]; then
  cargo build -q --release -p portcullis-server --bin portcullis --example calibration
fi
cp -r "$ROOT/policies" "$WORK/policies"

# start NAME PORT ENV... -- COMMAND...: starts a server, waits for /healthz, prints the time
# from launch to serving.
start() {
  local name=$1 port=$2; shift 2
  local env=(); while [ "$1" != "--" ]; do env+=("$1"); shift; done; shift
  local t0; t0=$(date +%s.%N)
  (cd "$WORK" && exec env "${env[@]}" "$@" >"$WORK/$name.log" 2>&1) &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 600); do
    if curl -sf "localhost:$port/healthz" >/dev/null; then
      echo "$name: serving after $(echo "$(date +%s.%N) - $t0" | bc) s, RSS $(rss "$name")"
      return
    fi
    sleep 0.02
  done
  cat "$WORK/$name.log"; exit 1
}
stop() { kill "$(cat "$WORK/$1.pid")"; wait "$(cat "$WORK/$1.pid")" 2>/dev/null || true; rm -f "$WORK/$1.pid"; }
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/"$(cat "$WORK/$1.pid")"/status; }

# wrk_run PORT PATH CONNECTIONS SCRIPT BODYFILE -> "requests/s median_us"
wrk_run() {
  local threads=2; [ "$3" = 1 ] && threads=1
  BODY=$5 BODIES=$5 wrk -t$threads -c"$3" -d"$DUR" --latency -s "$HERE/$4" "http://127.0.0.1:$1$2" | awk '
    /Non-2xx|Socket errors/ { bad = bad $0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                  m = (u == "ms") ? v * 1000 : (u == "s") ? v * 1000000 : v }
    END { if (bad != "") print "ERROR " bad > "/dev/stderr"; printf "%.0f %.0f\n", rps, m }'
}

# compare LABEL PATH CONNECTIONS SCRIPT BODYFILE NAME:PORT...: ROUNDS rounds, the servers in
# turn; prints each run, the median per server, and each server's ratio to the first.
compare() {
  local label=$1 path=$2 conns=$3 script=$4 body=$5; shift 5
  echo "== $label ($conns connections, $ROUNDS x $DUR each, alternating)"
  local out=$WORK/runs; : >"$out"
  for r in $(seq "$ROUNDS"); do
    for s in "$@"; do
      local name=${s%%:*} port=${s##*:}
      read -r rps med < <(wrk_run "$port" "$path" "$conns" "$script" "$body")
      echo "$name $rps $med" >>"$out"
      printf '  round %d %-26s %9s/s  median %6s us\n' "$r" "$name" "$rps" "$med"
    done
  done
  python3 - "$out" "$@" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
names = [s.split(":")[0] for s in sys.argv[2:]]
med = {n: (statistics.median(float(r[1]) for r in runs if r[0] == n),
           statistics.median(float(r[2]) for r in runs if r[0] == n)) for n in names}
base = med[names[0]]
for n in names:
    rps, lat = med[n]
    ratio = f"  {rps / base[0]:.2f} x {names[0]}, median latency {lat / base[1]:.2f} x" if n != names[0] else ""
    print(f"  median {n:<24} {rps:9.0f}/s  median {lat:5.0f} us{ratio}")
PY
}

echo "== data: $ENTITIES entities (gen_entities.py), $USERS stored users"
python3 "$HERE/gen_entities.py" "$ENTITIES" "$WORK/e.json"
echo '{"principal":"u0","action":"shipment.create","resource":"Portal::Shipment::\"s0\""}' >"$WORK/same.json"
N=$(python3 -c 'import json,sys; print(sum(e["uid"]["type"] == "Portal::User" for e in json.load(open(sys.argv[1]))))' "$WORK/e.json")
python3 "$HERE/gen_bodies.py" "$N" "$N" 500000 0 "$WORK/singles.txt"
python3 "$HERE/gen_bodies.py" "$N" "$N" 2000 100 "$WORK/batches.txt"

mkdir -p "$WORK/five"
cp "$WORK/policies/schema.cedarschema" "$WORK/five/"
cp "$HERE/five-policies.cedar" "$WORK/five/policies.cedar"

# suite FOLDER KEY LABEL: the three servers on one folder and the entities file, every load.
suite() {
  local folder=$1 key=$2 label=$3
  echo
  echo "######## $label"
  local C=calibration:18301 P=portcullis:18302 Q=portcullis-no-caches:18303
  start calibration 18301 -- "$CAL" "$folder" "$WORK/e.json" 127.0.0.1:18301
  start portcullis 18302 -- "$BIN" serve "$folder" --listen 127.0.0.1:18302 --entities "$WORK/e.json" --database-url "$WORK/p-$key.db"
  start portcullis-no-caches 18303 PORTCULLIS_SLICE_CACHE=0 PORTCULLIS_DECISION_CACHE=0 -- \
    "$BIN" serve "$folder" --listen 127.0.0.1:18303 --entities "$WORK/e.json" --database-url "$WORK/q-$key.db"
  for port in 18301 18302 18303; do
    curl -s "localhost:$port/v1/authorize" -H 'content-type: application/json' -d @"$WORK/same.json" | head -c 100; echo
  done
  compare "distinct questions: a random user, action and shipment each time" /v1/authorize 32 bodies.lua "$WORK/singles.txt" $C $P $Q
  compare "the same question again and again" /v1/authorize 32 post.lua "$WORK/same.json" $C $P $Q
  compare "distinct questions, one at a time" /v1/authorize 1 bodies.lua "$WORK/singles.txt" $C $P $Q
  echo "== batches of 100 distinct checks (decisions/s = requests/s x 100)"
  for s in $P $Q; do
    read -r rps _ < <(wrk_run "${s##*:}" /v1/authorize/batch 32 bodies.lua "$WORK/batches.txt")
    printf '  %-26s %9s decisions/s\n' "${s%%:*}" "$((rps * 100))"
  done
  echo "RSS after the load: calibration $(rss calibration), portcullis $(rss portcullis), no caches $(rss portcullis-no-caches)"
  stop calibration; stop portcullis; stop portcullis-no-caches
}
suite "$WORK/five" five "five Cedar policies (five-policies.cedar)"
suite "$WORK/policies" default "the default policies (policies/: roles.toml and its Cedar files)"

echo
echo "######## 100 and 100,000 entities: distinct questions (five policies), RSS, time to serve"
for n in 100 100000; do
  python3 "$HERE/gen_entities.py" "$n" "$WORK/e$n.json"
  U=$(python3 -c 'import json,sys; print(sum(e["uid"]["type"] == "Portal::User" for e in json.load(open(sys.argv[1]))))' "$WORK/e$n.json")
  python3 "$HERE/gen_bodies.py" "$U" "$U" 500000 0 "$WORK/s$n.txt"
  start "p$n" 18304 -- "$BIN" serve "$WORK/five" --listen 127.0.0.1:18304 --entities "$WORK/e$n.json" --database-url "$WORK/p$n.db"
  start "c$n" 18305 -- "$CAL" "$WORK/five" "$WORK/e$n.json" 127.0.0.1:18305
  compare "distinct questions, $n entities, five policies" /v1/authorize 32 bodies.lua "$WORK/s$n.txt" "calibration-$n:18305" "portcullis-$n:18304"
  echo "RSS after the load: portcullis $(rss "p$n"), calibration $(rss "c$n")"
  stop "p$n"; stop "c$n"
done

echo
echo "######## $USERS stored users (default policies) against the calibration server with the same users in its file"
COMPANIES=$((USERS / 100))
python3 "$HERE/gen_entities.py" $((USERS * 2 + COMPANIES * 2 + 3)) "$WORK/all.json"
python3 - "$WORK/all.json" "$WORK/records.json" <<'PY'
import json, sys
json.dump([e for e in json.load(open(sys.argv[1])) if e["uid"]["type"] != "Portal::User"], open(sys.argv[2], "w"))
PY
python3 "$HERE/gen_bodies.py" "$USERS" "$USERS" 500000 0 "$WORK/stored.txt"
# The users of gen_entities.py, in the store: company c{i % companies}, owners first.
ROLE="CASE WHEN i < $COMPANIES THEN 'owner' WHEN i % 3 = 0 THEN 'owner' WHEN i % 3 = 1 THEN 'admin' ELSE 'regular' END"
companies_sql() { echo "INSERT INTO companies (id, name, account_type, attrs, created_at) SELECT 'c' || i, 'c' || i, 'customer', '{\"subscription\": [\"insights\"]}'$1, 0 FROM series WHERE i < $COMPANIES;"; }
users_sql() { echo "INSERT INTO users (id, company_id, login, role, attrs, created_at, updated_at) SELECT 'u' || i, 'c' || (i % $COMPANIES), 'u' || i, $ROLE, '{\"scope_all\": true}'$1, 0, 0 FROM series;"; }
SERIES="WITH RECURSIVE series(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM series WHERE i < $USERS - 1)"
"$BIN" migrate --database-url "$WORK/users.db" >/dev/null
sqlite3 "$WORK/users.db" "$SERIES $(companies_sql '') $SERIES $(users_sql '')"
echo "SQLite store: $(sqlite3 "$WORK/users.db" 'SELECT count(*) FROM users') users"
start cal-users 18306 -- "$CAL" "$WORK/policies" "$WORK/all.json" 127.0.0.1:18306
start sqlite 18307 -- "$BIN" serve "$WORK/policies" --listen 127.0.0.1:18307 --entities "$WORK/records.json" --database-url "$WORK/users.db"
servers=("calibration-users:18306" "stored-sqlite:18307")
if psql -q "$PG" -c "CREATE DATABASE $PGDB" 2>/dev/null; then
  URL="${PG%/*}/$PGDB"
  "$BIN" migrate --database-url "$URL" >/dev/null
  PGSERIES="WITH series(i) AS (SELECT generate_series(0, $USERS - 1))"
  psql -q "$URL" -c "$PGSERIES $(companies_sql ::jsonb)" -c "$PGSERIES $(users_sql ::jsonb)" -c ANALYZE
  echo "PostgreSQL store: $(psql -tA "$URL" -c 'SELECT count(*) FROM users') users"
  start pg 18308 -- "$BIN" serve "$WORK/policies" --listen 127.0.0.1:18308 --entities "$WORK/records.json" --database-url "$URL"
  servers+=("stored-postgresql:18308")
else
  echo "SKIPPED: PostgreSQL not reachable at $PG"
fi
for s in "${servers[@]}"; do
  curl -s "localhost:${s##*:}/v1/authorize" -H 'content-type: application/json' -d @"$WORK/same.json" | head -c 120; echo
done
compare "distinct questions by $USERS stored users" /v1/authorize 32 bodies.lua "$WORK/stored.txt" "${servers[@]}"
