#!/usr/bin/env bash
# Decisions by stored user id at 100,000 users (SQLite and PostgreSQL) against the same
# decision on entities from a static `--entities` file, and cold-cache decision latency.
# See README.md beside this script. Needs: wrk, python3, curl, sqlite3; psql and a PostgreSQL
# at $PG (default postgres://postgres@127.0.0.1:5432/test) for the PostgreSQL rows.
set -euo pipefail
ROOT=$(pwd)
BIN=${BIN:-$ROOT/target/release/portcullis}
PORT=${PORT:-18191}
DUR=${DUR:-10s}
USERS=${USERS:-100000}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
WORK=$(mktemp -d)
PGDB=portcullis_bench_$$
trap 'kill $(cat $WORK/pid 2>/dev/null) 2>/dev/null || true; psql -q "$PG" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" 2>/dev/null || true; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || cargo build -q --release -p portcullis-server
cp -r "$ROOT/policies" "$WORK/policies"
HERE=$(dirname "$0")
COMPANIES=$((USERS / 100))

start() { # $@ = extra serve flags
  (cd "$WORK" && exec "$BIN" serve "$WORK/policies" --listen 127.0.0.1:$PORT "$@" >"$WORK/log" 2>&1) &
  echo $! >"$WORK/pid"
  for _ in $(seq 400); do curl -sf localhost:$PORT/healthz >/dev/null && return; sleep 0.05; done
  cat "$WORK/log"; exit 1
}
stop() { kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true; }
measure() { # $1 = store name, $2 = database URL: serve it, load it, stop
  start --entities "$WORK/records.json" --database-url "$2"
  curl -s localhost:$PORT/v1/authorize -d @"$WORK/stored.json"; echo
  run "stored ($1), $USERS users" "$WORK/stored.json" 32
  run "stored ($1), $USERS users, one at a time" "$WORK/stored.json" 1
  cold
  stop
}
run() { # $1 = label, $2 = body file, $3 = connections
  echo "== $1 ($3 connections, $DUR)"
  BODY=$2 wrk -t"$([ "$3" = 1 ] && echo 1 || echo 2)" -c"$3" -d"$DUR" --latency -s "$HERE/post.lua" "http://127.0.0.1:$PORT/v1/authorize" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
}
# Median latency of decisions by users never asked about before (each a cache miss: facts,
# company chain and grants read from the store), then of the same users again (hits).
cold() {
  python3 - $PORT "$COMPANIES" "$USERS" <<'PY'
import json, statistics, sys, time, urllib.request
port, companies, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def ask(u, c):
    body = json.dumps({"principal": f"u{u}", "action": "shipment.create",
                       "resource": f'Portal::Shipment::"s{c}"'}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/authorize", body,
                                 {"content-type": "application/json"})
    t0 = time.perf_counter()
    out = json.load(urllib.request.urlopen(req))
    return (time.perf_counter() - t0) * 1e6, out["decision"]
first = min(5000, n // 2)
users = range(first, min(first + 2000, n), 7)
coldt = [ask(u, u % companies) for u in users]
warm = [ask(u, u % companies) for u in users]
assert all(d == "allow" for _, d in coldt + warm), "unexpected deny"
print(f"cold (miss) median {statistics.median(t for t, _ in coldt):.0f} us, p99 {sorted(t for t, _ in coldt)[int(len(coldt)*.99)]:.0f} us; "
      f"warm (hit) median {statistics.median(t for t, _ in warm):.0f} us ({len(coldt)} users, python client)")
PY
}

echo '{"principal":"u0","action":"shipment.create","resource":"Portal::Shipment::\"s0\""}' >"$WORK/stored.json"
python3 "$HERE/gen_entities.py" "$USERS" "$WORK/static.json"
# Records only (companies' locations and shipments s0..s{companies-1}): the users come from the store.
python3 - "$WORK/static.json" "$WORK/records.json" "$COMPANIES" <<'PY'
import json, sys
src, out, companies = sys.argv[1], sys.argv[2], int(sys.argv[3])
keep = lambda e: e["uid"]["type"] in ("Portal::Role", "Portal::Company", "Portal::Location") or (
    e["uid"]["type"] == "Portal::Shipment" and int(e["uid"]["id"][1:]) < companies)
json.dump([e for e in json.load(open(src)) if keep(e)], open(out, "w"))
PY

# The same users in a store: company c{i % companies}, owners first, as gen_entities.py does.
SQL_COMPANIES="INSERT INTO companies (id, name, account_type, attrs, created_at) SELECT 'c' || i, 'c' || i, 'customer', '{\"subscription\": [\"insights\"]}', 0 FROM series WHERE i < $COMPANIES;"
SQL_USERS="INSERT INTO users (id, company_id, login, role, attrs, created_at, updated_at) SELECT 'u' || i, 'c' || (i % $COMPANIES), 'u' || i, CASE WHEN i < $COMPANIES THEN 'owner' WHEN i % 3 = 0 THEN 'owner' WHEN i % 3 = 1 THEN 'admin' ELSE 'regular' END, '{\"scope_all\": true}', 0, 0 FROM series;"
# PostgreSQL's attrs columns are JSONB: the same statements with casts.
SQL_COMPANIES_PG="INSERT INTO companies (id, name, account_type, attrs, created_at) SELECT 'c' || i, 'c' || i, 'customer', '{\"subscription\": [\"insights\"]}'::jsonb, 0 FROM series WHERE i < $COMPANIES;"
SQL_USERS_PG="INSERT INTO users (id, company_id, login, role, attrs, created_at, updated_at) SELECT 'u' || i, 'c' || (i % $COMPANIES), 'u' || i, CASE WHEN i < $COMPANIES THEN 'owner' WHEN i % 3 = 0 THEN 'owner' WHEN i % 3 = 1 THEN 'admin' ELSE 'regular' END, '{\"scope_all\": true}'::jsonb, 0, 0 FROM series;"

echo "== static --entities file, $USERS users"
start --entities "$WORK/static.json"
curl -s localhost:$PORT/v1/authorize -d @"$WORK/stored.json"; echo
run "static, $USERS users" "$WORK/stored.json" 32
run "static, $USERS users, one at a time" "$WORK/stored.json" 1
stop

DB="$WORK/users.db"
"$BIN" migrate --database-url "$DB" >/dev/null
SERIES="WITH RECURSIVE series(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM series WHERE i < $USERS - 1)"
sqlite3 "$DB" "$SERIES $SQL_COMPANIES $SERIES $SQL_USERS"
echo "== SQLite store, $(sqlite3 "$DB" 'SELECT count(*) FROM users') users"
measure SQLite "$DB"

if psql -q "$PG" -c "CREATE DATABASE $PGDB" 2>/dev/null; then
  URL="${PG%/*}/$PGDB"
  "$BIN" migrate --database-url "$URL" >/dev/null
  psql -q "$URL" -c "WITH series(i) AS (SELECT generate_series(0, $USERS - 1)) $SQL_COMPANIES_PG" \
    -c "WITH series(i) AS (SELECT generate_series(0, $USERS - 1)) $SQL_USERS_PG" -c "ANALYZE"
  echo "== PostgreSQL store, $(psql -tA "$URL" -c 'SELECT count(*) FROM users') users"
  measure PostgreSQL "$URL"
else
  echo "SKIPPED: PostgreSQL not reachable at $PG"
fi
