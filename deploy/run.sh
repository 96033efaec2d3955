#!/usr/bin/env bash
# Brings up three `portcullis serve` instances on one fresh PostgreSQL database behind HAProxy
# (deploy/haproxy.cfg) on this machine, then measures with deploy/measure.py:
#   a. ~20 s of `POST /v1/authorize` for a stored user through the balancer;
#   b. during it, SIGKILL of instance 2 and its restart 2 s later: failed requests, and the
#      time until it is ready and back in HAProxy's rotation;
#   c. with a binary that drains (drain_delay_ms, /readyz): SIGTERM of instance 3 under the
#      same load, its restart, and the failures it causes (none expected);
#   d. how fast a change of a stored user, through instance 1's management API or through
#      `portcullis users`, reaches instance 3's decisions.
# Everything is removed at exit: processes, the database, the temp folder.
#
# Usage: deploy/run.sh            (as root when haproxy is not installed yet: apt-get)
# Settings (environment):
#   BIN           the portcullis binary [$HOME/.cache/portcullis/target-main/release/portcullis]
#   PG_ADMIN_URL  a database to connect to for CREATE/DROP DATABASE
#                 [postgres://postgres@127.0.0.1:5432/test]
#   DURATION, KILL_AT, RESTART_AFTER, TERM_AT, CONNECTIONS, CHANGES   load length (20 s),
#                 SIGKILL time (5 s), restart delay (2 s), SIGTERM time (12 s; 0: none),
#                 client connections (16), API changes (10)
#   KEEP_LOGS     a folder to copy the instances' and HAProxy's logs and summary.json into
# Exit status: 0 when measure.py passes (see its docstring for the exact criteria), 1 when
# it does not, 2 when the set-up fails.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
BIN=${BIN:-$HOME/.cache/portcullis/target-main/release/portcullis}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}
DURATION=${DURATION:-20}
KILL_AT=${KILL_AT:-5}
RESTART_AFTER=${RESTART_AFTER:-2}
TERM_AT=${TERM_AT:-12}
CONNECTIONS=${CONNECTIONS:-16}
CHANGES=${CHANGES:-10}
KEEP_LOGS=${KEEP_LOGS:-}

# The ports of deploy/haproxy.cfg: the balancer, the three instances, HAProxy's stats page.
balancer_port=8180
instance_ports=(8181 8182 8183)
stats_port=8404

say() { printf '%s\n' "run.sh: $*" >&2; }
die() {
    say "$*"
    exit 2
}

# Only what this script sets reaches the instances: PORTCULLIS_* from the caller's shell
# (an API key, another database, a config) would change what is measured.
while IFS= read -r name; do
    unset "$name"
done < <(compgen -e | grep '^PORTCULLIS_' || true)
export PORTCULLIS_LOG=warn

# ---- tools ----------------------------------------------------------------------------------

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v curl >/dev/null || missing+=(curl)
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${missing[*]}; install them (apt-get) or run as root"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v python3 >/dev/null || die "python3 is required"

# The binary may be in the middle of a rebuild: give it two minutes to reappear.
for _ in $(seq 120); do
    [[ -x $BIN ]] && break
    sleep 1
done
[[ -x $BIN ]] || die "no portcullis binary at $BIN (set BIN)"

for port in "$balancer_port" "${instance_ports[@]}" "$stats_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use; stop what listens there first"
    fi
done

# ---- clean-up -------------------------------------------------------------------------------

db="portcullis_deploy_$$"
db_url="${PG_ADMIN_URL%/*}/$db"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-deploy.XXXXXX")
db_created=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$? pids=() f pid
    for f in "$tmp"/*.pid; do
        [[ -e $f ]] || continue
        pid=$(<"$f")
        [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
    done
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if ((db_created)); then
        psql "$PG_ADMIN_URL" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null ||
            say "could not drop database $db"
    fi
    if [[ -n $KEEP_LOGS ]]; then
        mkdir -p "$KEEP_LOGS"
        cp "$tmp"/*.log "$tmp"/summary.json "$KEEP_LOGS"/ 2>/dev/null || true
    fi
    if ((rc != 0)); then
        for f in "$tmp"/*.log; do
            [[ -s $f ]] || continue
            say "last lines of ${f##*/}:"
            tail -n 15 "$f" >&2
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Instances and CLI calls run in the temp folder, so no portcullis.toml of the caller's
# working directory is read.
cd "$tmp"
cp -r "$repo/policies" "$tmp/policies"

# ---- the database and its first users -------------------------------------------------------

psql "$PG_ADMIN_URL" -qX -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db at $PG_ADMIN_URL"
db_created=1
"$BIN" migrate --database-url "$db_url" >/dev/null
# olga: the owner of customer company acme, the principal of the load and the caller of the
# management API; m1 (admin) has its role changed through the API, m2 (admin) is deactivated
# and reactivated with the CLI. `shipping_rule.edit` on the company is allowed to owners and
# admins of a customer company and denied to regular users and deactivated users.
owner=$("$BIN" users --database-url "$db_url" create --company acme --account-type customer \
    --id olga --login olga --role owner --attr scope_all=true)
owner_key=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])' <<<"$owner")
for user in m1 m2; do
    "$BIN" users --database-url "$db_url" create --company acme --id "$user" --login "$user" \
        --role admin --attr scope_all=true --no-key >/dev/null
done

# ---- three instances ------------------------------------------------------------------------

# A binary that drains keeps answering for a second after SIGTERM with /readyz at 503, so
# HAProxy (a check every 250 ms, out after two failures) stops sending before it closes.
if "$BIN" serve --help | grep -q -- --drain-delay-ms; then
    export PORTCULLIS_DRAIN_DELAY_MS=1000
else
    say "this binary does not drain (no --drain-delay-ms): no SIGTERM step"
    TERM_AT=0
fi

instance_cmd() { # the command of instance $1 (1-based)
    cmd=("$BIN" serve "$tmp/policies" --listen "127.0.0.1:${instance_ports[$1 - 1]}" --database-url "$db_url")
}
for i in 1 2 3; do
    instance_cmd "$i"
    "${cmd[@]}" >>"$tmp/instance$i.log" 2>&1 &
    echo "$!" >"$tmp/instance$i.pid"
    disown # its SIGKILL below is on purpose: no "Killed" job notice
done

# Readiness: /readyz when the binary has it (404 otherwise: an older build), else /healthz,
# which such a build answers once it listens, i.e. once it is ready.
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }
for i in 1 2 3; do
    url="http://127.0.0.1:${instance_ports[$i - 1]}"
    for _ in $(seq 300); do
        code=$(http_code "$url/healthz")
        [[ $code == 200 ]] && break
        kill -0 "$(<"$tmp/instance$i.pid")" 2>/dev/null || die "instance $i exited"
        sleep 0.1
    done
    [[ $code == 200 ]] || die "instance $i not up within 30 s"
done
ready_path=/readyz
if [[ $(http_code "http://127.0.0.1:${instance_ports[0]}/readyz") == 404 ]]; then
    ready_path=/healthz
    say "this binary has no /readyz: HAProxy checks /healthz instead"
fi

# ---- HAProxy --------------------------------------------------------------------------------

# deploy/haproxy.cfg as it is, but: its stats socket and logs in the temp folder (logs at
# notice: server state changes, not every request), not chrooted, as the invoking user, and
# /healthz for a binary without /readyz.
sed -e "s#^\([[:space:]]*\)stats socket /run/haproxy/admin.sock#\1stats socket $tmp/haproxy.sock#" \
    -e "s#^\([[:space:]]*\)log /dev/log local0 info#\1log stdout format raw local0 notice#" \
    -e '/^[[:space:]]*\(chroot\|user\|group\) /d' \
    -e "s#GET /readyz #GET $ready_path #" \
    "$here/haproxy.cfg" >"$tmp/haproxy.cfg"
grep -q "stats socket $tmp/haproxy.sock" "$tmp/haproxy.cfg" || die "haproxy.cfg: stats socket line not found"
haproxy -q -c -f "$tmp/haproxy.cfg" || die "haproxy -c rejects the configuration"
haproxy -db -f "$tmp/haproxy.cfg" >>"$tmp/haproxy.log" 2>&1 &
echo "$!" >"$tmp/haproxy.pid"
disown
for _ in $(seq 100); do
    [[ -S $tmp/haproxy.sock ]] && break
    sleep 0.05
done
[[ -S $tmp/haproxy.sock ]] || die "haproxy did not start"

# ---- measure --------------------------------------------------------------------------------

instance_cmd 2
rc=0
python3 "$here/measure.py" \
    --balancer "127.0.0.1:$balancer_port" \
    --instances "$(printf '127.0.0.1:%s,' "${instance_ports[@]}" | sed 's/,$//')" \
    --stats-socket "$tmp/haproxy.sock" \
    --run-dir "$tmp" \
    --ready-path "$ready_path" \
    --owner-key "$owner_key" \
    --database-url "$db_url" \
    --duration "$DURATION" --kill-at "$KILL_AT" --restart-after "$RESTART_AFTER" --term-at "$TERM_AT" \
    --connections "$CONNECTIONS" --changes "$CHANGES" \
    --json-out "$tmp/summary.json" \
    -- "${cmd[@]}" || rc=$?
exit "$rc"
