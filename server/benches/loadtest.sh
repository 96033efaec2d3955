#!/usr/bin/env bash
# Reproducible load test of `portcullis serve` (see README.md beside this script).
# Needs: wrk (apt-get install -y wrk), python3, curl, taskset (util-linux). Run from the workspace root.
set -euo pipefail
ROOT=$(pwd)
BIN=${BIN:-$ROOT/target/release/portcullis}
PORT=${PORT:-18190}
DUR=${DUR:-10s}
WORK=$(mktemp -d)
trap 'kill $(cat $WORK/pid* 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || cargo build -q --release -p portcullis-server
cp -r "$ROOT/policies" "$WORK/policies"
HERE=$(dirname "$0")

start() { # $1 = entities file; runs in $WORK so the default user-store file lands there
  (cd "$WORK" && exec env ${SLICE_CACHE:+PORTCULLIS_SLICE_CACHE=$SLICE_CACHE} ${DECISION_CACHE:+PORTCULLIS_DECISION_CACHE=$DECISION_CACHE} "$BIN" serve "$WORK/policies" --listen 127.0.0.1:$PORT --entities "$1" >"$WORK/log" 2>&1) &
  echo $! >"$WORK/pid"
  for _ in $(seq 200); do curl -sf localhost:$PORT/healthz >/dev/null && return; sleep 0.05; done
  cat "$WORK/log"; exit 1
}
stop() { kill "$(cat "$WORK/pid")"; wait "$(cat "$WORK/pid")" 2>/dev/null || true; }
rss() { awk '/VmRSS/ {print $2/1024 " MB"}' /proc/"$(cat "$WORK/pid")"/status; }
run() { # $1 = label, $2 = body file, $3 = path, $4 = connections; SCRIPT= another wrk script
  echo "== $1 ($4 connections, $DUR)"
  BODY=$2 wrk -t"$([ "$4" = 1 ] && echo 1 || echo 2)" -c"$4" -d"$DUR" --latency -s "${SCRIPT:-$HERE/post.lua}" "http://127.0.0.1:$PORT$3" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
}
# One at a time with the server and wrk on the same core: without the cross-core wake-up a
# virtual machine's idle core adds to every round trip (GET /healthz, which does nothing, pays
# it alike: it is measured first, unpinned and pinned), so the figure is the server's own
# latency.
pinned() { # $1 = label, $2 = body file, $3 = path
  local all="0-$(($(nproc) - 1))"
  echo "== GET /healthz, one at a time, unpinned ($DUR)"
  wrk -t1 -c1 -d"$DUR" --latency "http://127.0.0.1:$PORT/healthz" | grep -E "50%"
  taskset -a -p -c 0 "$(cat "$WORK/pid")" >/dev/null
  echo "== $1, one at a time, server and wrk on core 0 ($DUR)"
  taskset -c 0 wrk -t1 -c1 -d"$DUR" --latency "http://127.0.0.1:$PORT/healthz" | grep -E "50%" | sed 's/^/  GET \/healthz /'
  BODY=$2 taskset -c 0 wrk -t1 -c1 -d"$DUR" --latency -s "$HERE/post.lua" "http://127.0.0.1:$PORT$3" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
  taskset -a -p -c "$all" "$(cat "$WORK/pid")" >/dev/null
}
users() { python3 -c 'import json,sys; print(sum(e["uid"]["type"] == "Portal::User" for e in json.load(open(sys.argv[1]))))' "$1"; }

echo '{"principal":"u0","action":"shipment.create","resource":"Portal::Shipment::\"s0\""}' >"$WORK/stored.json"
python3 "$HERE/gen_entities.py" 100 "$WORK/e100.json" "$WORK/inline.json"
python3 "$HERE/gen_entities.py" 100000 "$WORK/e100k.json"
python3 - "$WORK/batch.json" <<'PY'
import json, sys
# 100 different questions: u0 on 40 shipments x 3 actions (no two checks alike).
actions = ["shipment.create", "shipment.read", "shipment.export"]
checks = [{"id": i, "principal": "u0", "action": actions[i % 3], "resource": f'Portal::Shipment::"s{i % 40}"'} for i in range(100)]
json.dump({"checks": checks}, open(sys.argv[1], "w"))
PY

for n in 100 100k; do
  start "$WORK/e$n.json"
  curl -s localhost:$PORT/v1/authorize -d @"$WORK/stored.json"; echo
  echo "-- $n entities, RSS after start: $(rss)"
  run "stored entities, $n" "$WORK/stored.json" /v1/authorize 32
  run "stored entities, $n, one at a time" "$WORK/stored.json" /v1/authorize 1
  pinned "stored entities, $n" "$WORK/stored.json" /v1/authorize
  run "inline entities, $n" "$WORK/inline.json" /v1/authorize 32
  run "inline entities, $n, one at a time" "$WORK/inline.json" /v1/authorize 1
  run "batch of 100 (x100 decisions/s), $n" "$WORK/batch.json" /v1/authorize/batch 32
  # Questions never asked before: a random user, action and shipment per check, so neither
  # the slice cache nor the decisions it keeps answer them (distinct.lua).
  export N=$(users "$WORK/e$n.json")
  SCRIPT=$HERE/distinct.lua run "distinct questions, $n" - /v1/authorize 32
  SCRIPT=$HERE/distinct.lua run "distinct questions, $n, one at a time" - /v1/authorize 1
  BATCH=100 SCRIPT=$HERE/distinct.lua run "batch of 100 distinct questions (x100 decisions/s), $n" - /v1/authorize/batch 32
  echo "-- $n entities, RSS after load: $(rss)"
  stop
  # The same without the caches: every request builds its slice and is evaluated.
  SLICE_CACHE=0 DECISION_CACHE=0 start "$WORK/e$n.json"
  run "stored entities, $n, no caches" "$WORK/stored.json" /v1/authorize 32
  run "stored entities, $n, no caches, one at a time" "$WORK/stored.json" /v1/authorize 1
  run "batch of 100 (x100 decisions/s), $n, no caches" "$WORK/batch.json" /v1/authorize/batch 32
  stop
done

echo "== reload latency: save -> new version at GET /v1/policy (20 saves)"
start "$WORK/e100.json"
python3 - "$WORK/policies/roles.toml" $PORT <<'PY'
import json, statistics, sys, time, urllib.request
path, port = sys.argv[1], sys.argv[2]
def version():
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/policy"))["version"]
original = open(path).read()
times = []
for i in range(20):
    before = version()
    t0 = time.perf_counter()
    with open(path, "w") as f:
        f.write(original + f"\n# reload {i}\n")
    while version() == before:
        time.sleep(0.001)
    times.append((time.perf_counter() - t0) * 1000)
print(f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
PY
stop

# The same request against both sizes at once, alternating, so the machine's drift between
# the two halves above does not pass for a difference between sizes.
echo "== 100 vs 100,000 entities, alternating: stored entities, 32 connections, 3 rounds ($DUR each)"
BASE=$PORT
start "$WORK/e100.json"; mv "$WORK/pid" "$WORK/pid.small"
PORT=$((BASE + 1)) PORTCULLIS_DATABASE_URL="$WORK/large.db" start "$WORK/e100k.json"; mv "$WORK/pid" "$WORK/pid.large"
for round in 1 2 3; do
  for size in small large; do
    port=$([ $size = small ] && echo $BASE || echo $((BASE + 1)))
    rate=$(BODY="$WORK/stored.json" wrk -t2 -c32 -d"$DUR" -s "$HERE/post.lua" "http://127.0.0.1:$port/v1/authorize" \
      | awk '/Requests\/sec/ {print $2}')
    echo "round $round, $([ $size = small ] && echo 100 || echo 100k) entities: $rate/s"
  done
done
kill "$(cat "$WORK/pid.small")" "$(cat "$WORK/pid.large")"
wait 2>/dev/null || true
